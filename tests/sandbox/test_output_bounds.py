"""What guests print, and the headers they answer with, stay bounded; the log stays honest."""

from __future__ import annotations

import json
import logging
import re
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from wasikv import ConfigError, Host, Limits
from wasikv.limits import DEFAULT_MAX_OUTPUT_BYTES
from wasikv.stores.base import Change
from wasikv.triggers._output import GUEST_LOGGER, CapturedOutput, log_guest_output, printable
from wasikv.triggers.http_component import HttpComponent, HttpRequest
from wasikv.triggers.watch import WatcherComponent

from .test_up_hostile import MANIFEST, Up, start_up

MIB = 1 << 20


# ------------------------------------------------------------ the pieces


def test_captured_output_keeps_the_first_bytes_and_counts_the_rest() -> None:
    out = CapturedOutput(10)
    assert out.write(b"12345") == 5
    assert out.write(b"67890abc") == 8  # a guest is told everything was written
    assert out.write(b"more") == 4
    assert out.getvalue() == b"1234567890"
    assert (out.dropped, out.written) == (7, 17)
    with pytest.raises(ValueError, match="at least 1 byte"):
        CapturedOutput(0)


def test_the_output_limit_is_a_checked_limit() -> None:
    assert Limits().max_output_bytes == DEFAULT_MAX_OUTPUT_BYTES == MIB
    with pytest.raises(ConfigError, match="max_output_bytes must be at least 1"):
        Limits(max_output_bytes=0)


def test_control_characters_are_made_visible() -> None:
    assert printable("\x1b[31mred\x1b[0m") == "\\x1b[31mred\\x1b[0m"
    assert printable("a\rb\x07c\x00d\x7fe\x9bf\tg") == "a\\x0db\\x07c\\x00d\\x7fe\\x9bf\tg"
    assert printable("\u202eevil\u2028x") == "\\u202eevil\\u2028x"
    assert printable("héllo wörld ✓ C:\\path") == "héllo wörld ✓ C:\\path"


def test_logged_lines_are_split_at_newlines_only_and_escaped(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=GUEST_LOGGER)
    out, err = CapturedOutput(MIB), CapturedOutput(16)
    out.write(b"one\r\ntwo\rthree\x1b[2K\n\xff\xfe bytes\n\n")
    err.write(b"0123456789abcdef and the rest")
    log_guest_output("app", out, err)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "[app] one"),
        (logging.INFO, "[app] two\\x0dthree\\x1b[2K"),
        (logging.INFO, "[app] \\xff\\xfe bytes"),
        (logging.WARNING, "[app] 0123456789abcdef"),
        (
            logging.WARNING,
            "[app] stderr output truncated after 16 bytes (13 more dropped; the limit is max_output_bytes)",
        ),
    ]


# ------------------------------------------------------- real guests, in-process


def test_an_http_guest_printing_megabytes_is_cut_at_the_limit(
    hostile_wasm: Path, make_host: Callable[..., Host], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=GUEST_LOGGER)
    host = make_host({"default": "memory:"}, limits=Limits(max_output_bytes=4096))
    app = HttpComponent(host, host.load(hostile_wasm), name="flood")
    for path in ("/hostile/print-3", "/hostile/eprint-3"):
        caplog.clear()
        response = app.handle(HttpRequest("GET", path))
        assert response.status == 200 and json.loads(response.body) == {"printed_mib": 3}
        lines = [r.getMessage() for r in caplog.records]
        # Four whole 1 KiB lines, then the marker: nothing past the limit was kept.
        assert lines[:4] == ["[flood] " + "x" * 1023] * 4
        stream = "stdout" if path.endswith("/print-3") else "stderr"
        assert lines[4:] == [
            f"[flood] {stream} output truncated after 4096 bytes "
            f"({3 * MIB - 4096} more dropped; the limit is max_output_bytes)"
        ]


def test_a_watcher_batch_shares_one_bound(
    hostile_wasm: Path, make_host: Callable[..., Host], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=GUEST_LOGGER)
    host = make_host({"default": "memory:"}, limits=Limits(max_output_bytes=8192))
    watcher = WatcherComponent(host, host.load(hostile_wasm), "default", name="flood")
    changes = [Change(1, "hostile/a/print-2", b"1"), Change(2, "hostile/b/eprint-1", b"2")]
    changes.append(Change(3, "hostile/c/print-2", b"3"))
    assert watcher.deliver(changes) == 3
    assert json.loads(host.bucket().get("seen/hostile/c/print-2") or b"") == {"printed_mib": 2}
    markers = [r.getMessage() for r in caplog.records if "truncated" in r.getMessage()]
    assert markers == [
        f"[flood] stdout output truncated after 8192 bytes ({4 * MIB - 8192} more dropped;"
        " the limit is max_output_bytes)",
        f"[flood] stderr output truncated after 8192 bytes ({MIB - 8192} more dropped;"
        " the limit is max_output_bytes)",
    ]
    assert len([r for r in caplog.records if r.name == GUEST_LOGGER]) == 8 + 8 + 2


# ------------------------------------------------------------ under `wasikv up`


@pytest.fixture(params=["fresh-instances", "instance-reuse"])
def app_dir(hostile_wasm: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    shutil.copy(hostile_wasm, tmp_path / "hostile.wasm")
    reuse = "instance_reuse = true\n" if request.param == "instance-reuse" else ""
    (tmp_path / "wasikv.toml").write_text(MANIFEST + reuse)
    return tmp_path


class LoggingUp:
    """A `wasikv up` whose log (stderr) is read as it is written, as a terminal or journald would.

    Left unread, a pipe fills after 64 KiB and the server blocks in its
    logging: that would test the pipe, not the server.
    """

    def __init__(self, up: Up) -> None:
        self.up = up
        self.lines: list[str] = []
        assert up.proc.stderr is not None
        self._reader = threading.Thread(target=self.lines.extend, args=(up.proc.stderr,), daemon=True)
        self._reader.start()

    def stop(self) -> str:
        """Stop the server with SIGINT; everything it logged."""
        self.up.proc.send_signal(signal.SIGINT)
        self.up.proc.wait(timeout=60)
        self._reader.join(timeout=60)
        assert self.up.proc.returncode == 0, self.lines[-20:]
        return "".join(self.lines)


@pytest.fixture
def server(app_dir: Path) -> Iterator[LoggingUp]:
    server = start_up(app_dir, "--workers", "2", "--request-timeout", "120")
    yield LoggingUp(server)
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.communicate()


def test_a_guest_printing_hundreds_of_megabytes_leaves_the_server_small(server: LoggingUp) -> None:
    up = server.up
    with httpx.Client(base_url=up.base, timeout=180) as client:
        assert client.get("/hostile/ok").status_code == 200
        before = up.rss_mib()
        flood = client.get("/hostile/print-200")
        assert flood.status_code == 200 and flood.json() == {"printed_mib": 200}
        assert client.get("/hostile/eprint-50").status_code == 200
        assert [client.get("/hostile/ok").status_code for _ in range(3)] == [200] * 3
        after = up.rss_mib()
    # Holding what was printed took the server past 700 MiB for these 250 MiB
    # (2.9 GiB for 1 GiB); kept to 1 MiB a stream, it barely grows.
    assert up.peak_rss_mib < before + 150, (before, up.peak_rss_mib)
    assert after < before + 100, (before, after)
    err = server.stop()
    limit = DEFAULT_MAX_OUTPUT_BYTES
    assert f"[hostile] stdout output truncated after {limit} bytes ({200 * MIB - limit} more dropped;" in err
    assert f"[hostile] stderr output truncated after {limit} bytes ({50 * MIB - limit} more dropped;" in err
    # Each request logged at most its 1 MiB of 1 KiB lines a stream.
    assert len(err.splitlines()) < 2 * 1024 + 100
    assert "panicked" not in err and "Traceback" not in err


def test_guest_output_cannot_repaint_or_forge_log_lines(server: LoggingUp) -> None:
    with httpx.Client(base_url=server.up.base, timeout=60) as client:
        assert client.get("/hostile/ansi").json() == {"printed": 4}
    err = server.stop()
    # (A CR would read as a line break here: the carriage line below checks it.)
    for char in "\x1b\x07\x00\x08\x9b":
        assert char not in err, repr(char)
    lines = err.splitlines()
    for line in (
        "[hostile] \\x1b[2K\\x1b[1Gwasikv: forged by the guest\\x1b[0m",
        "[hostile] bell\\x07 nul\\x00 backspace\\x08 c1-csi\\x9b31m end",
        "[hostile] carriage\\x0dwasikv: overwritten",
        "[hostile] tab\tkept",
    ):
        # Once from stdout, once from stderr, each one whole log record.
        assert sum(logged.endswith(" " + line) for logged in lines) == 2, (line, err)
    # No line of the log starts as a forged one would.
    assert not [line for line in lines if re.match(r"wasikv: (forged|overwritten)", line)]


def test_oversized_response_headers_are_a_500_that_says_why(server: LoggingUp) -> None:
    with httpx.Client(base_url=server.up.base, timeout=60) as client:
        for path in ("/hostile/bigheaders", "/hostile/manyheaders"):
            refused = client.get(path)
            assert refused.status_code == 500 and refused.text == "Internal Server Error\n", path
            assert not [name for name in refused.headers if name.startswith("x-")]
        assert client.get("/hostile/ok").status_code == 200
    err = server.stop()
    # 80 headers: names of 7 or 8 characters, values of 1000, 4 bytes of framing each.
    assert (
        "component hostile failed on GET /hostile/bigheaders: "
        "response headers of 80950 bytes are more than the 65536 allowed"
    ) in err
    assert (
        "component hostile failed on GET /hostile/manyheaders: "
        "1000 response headers are more than the 256 allowed"
    ) in err


def test_max_output_sets_how_much_up_keeps(app_dir: Path) -> None:
    server = LoggingUp(start_up(app_dir, "--max-output", "4"))
    try:
        with httpx.Client(base_url=server.up.base, timeout=60) as client:
            assert client.get("/hostile/print-1").status_code == 200
        err = server.stop()
    finally:
        if server.up.proc.poll() is None:
            server.up.proc.kill()
    assert f"[hostile] stdout output truncated after 4096 bytes ({MIB - 4096} more dropped;" in err
    assert sum(line.endswith("[hostile] " + "x" * 1023 + "\n") for line in server.lines) == 4
