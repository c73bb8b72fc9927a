"""Deadlines: a guest that loops forever is stopped, whatever runs it, and the host goes on."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wasikv import GuestInterrupted, GuestTimeout, GuestTrap, Host
from wasikv.app.loader import load_app
from wasikv.triggers.watch import RetryPolicy, WatchTriggers

from ..support import COMPILE_CACHE
from .conftest import start_wasikv


def _run(host: Host, wasm: Path, mode: str, timeout: float | None) -> tuple[int, bytes]:
    out = io.BytesIO()
    code = host.run(wasm, [mode], stdout=out, stderr=io.BytesIO(), timeout=timeout)
    return code, out.getvalue()


def test_a_looping_guest_is_stopped_at_its_deadline(hostile_wasm: Path) -> None:
    with Host({"default": "memory:"}, cache_dir=COMPILE_CACHE) as host:
        host.load(hostile_wasm)
        started = time.monotonic()
        with pytest.raises(GuestTimeout, match=r"deadline of 0\.5 s") as stopped:
            _run(host, hostile_wasm, "loop", 0.5)
        elapsed = time.monotonic() - started
        assert stopped.value.timeout == 0.5
        assert 0.5 <= elapsed < 2.0
        # The host is unharmed: the next run of the same component works.
        assert _run(host, hostile_wasm, "ok", 0.5) == (0, b'{"ok": true}\n')


def test_a_deadline_never_stops_a_guest_that_finishes_in_time(hostile_wasm: Path) -> None:
    with Host({"default": "memory:"}, cache_dir=COMPILE_CACHE) as host:
        for _ in range(20):
            assert _run(host, hostile_wasm, "ok", 5.0)[0] == 0


def test_a_trap_is_not_mistaken_for_a_timeout(hostile_wasm: Path) -> None:
    with Host({"default": "memory:"}, cache_dir=COMPILE_CACHE) as host:
        with pytest.raises(GuestTrap) as trapped:
            _run(host, hostile_wasm, "overflow", 30.0)
        assert type(trapped.value) is GuestTrap


def test_ctrl_c_while_the_guest_thread_starts_stops_the_guest_and_keeps_its_store(
    hostile_wasm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C landing in Thread.start(), once the guest runs (seen under load in CI-like runs).

    The store used to be freed while the guest still ran in it: the process
    hung or crashed. Now the guest is stopped (or abandoned) first.
    """
    import threading

    real_start = threading.Thread.start

    def start_then_ctrl_c(thread: threading.Thread) -> None:
        real_start(thread)
        if thread.name == "wasikv-run":
            time.sleep(0.3)  # the guest is looping
            raise KeyboardInterrupt

    monkeypatch.setattr(threading.Thread, "start", start_then_ctrl_c)
    with Host({"default": "memory:"}, cache_dir=COMPILE_CACHE) as host:
        host.load(hostile_wasm)
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            _run(host, hostile_wasm, "loop", None)
        assert time.monotonic() - started < 5
        monkeypatch.undo()
        # The host still works afterwards.
        assert _run(host, hostile_wasm, "ok", None)[0] == 0


def test_interrupt_stops_running_guests_of_the_host(hostile_wasm: Path) -> None:
    import threading

    with Host({"default": "memory:"}, cache_dir=COMPILE_CACHE) as host:
        host.load(hostile_wasm)
        errors: list[BaseException] = []

        def loop() -> None:
            try:
                _run(host, hostile_wasm, "loop", None)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=loop) for _ in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        host.interrupt()
        for thread in threads:
            thread.join(30)
        # The loops never end by themselves; no bound on how fast (a loaded
        # machine's business), only that they are stopped.
        assert not any(thread.is_alive() for thread in threads)
        assert [type(e) for e in errors] == [GuestInterrupted, GuestInterrupted]
        # Later guests of an interrupted host are stopped at once too.
        with pytest.raises(GuestInterrupted):
            _run(host, hostile_wasm, "loop", None)


def test_wasikv_run_timeout_exits_124(hostile_wasm: Path, tmp_path: Path) -> None:
    proc = start_wasikv("run", "--timeout", "1", str(hostile_wasm), "loop", cwd=tmp_path)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 124
    assert f"Error: {hostile_wasm}: stopped after the --timeout of 1 s" in err
    assert "panicked" not in err and "Traceback" not in err


def test_wasikv_run_timeout_leaves_a_sleeping_guest_behind(hostile_wasm: Path, tmp_path: Path) -> None:
    # A guest inside a WASI sleep is not running wasm, so epochs cannot stop
    # it: `run` gives up on it a second after the deadline.
    started = time.monotonic()
    proc = start_wasikv("run", "--timeout", "1", str(hostile_wasm), "sleep", cwd=tmp_path)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 124, err
    assert time.monotonic() - started < 15
    assert "panicked" not in err


def test_ctrl_c_stops_wasikv_run_of_a_looping_guest(hostile_wasm: Path, tmp_path: Path) -> None:
    proc = start_wasikv("run", str(hostile_wasm), "loop", cwd=tmp_path)
    try:
        time.sleep(3)  # compiled already: the guest is looping by now
        assert proc.poll() is None
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()  # a failed run must not leave the guest spinning for the rest of the suite
        proc.wait()
    assert time.monotonic() - sent < 3
    assert proc.returncode == 130, err
    assert "interrupted" in err and "panicked" not in err


def test_ctrl_c_while_the_component_compiles_stops_it_before_it_loops(
    hostile_wasm: Path, tmp_path: Path
) -> None:
    # --no-cache: the compile takes seconds, and Ctrl-C lands in it (a KeyboardInterrupt
    # raised there could be lost in a finalizer, and the guest then looped for good).
    proc = start_wasikv("run", "--no-cache", str(hostile_wasm), "loop", cwd=tmp_path)
    try:
        time.sleep(3)
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err


WATCH_MANIFEST = """\
spin_manifest_version = 2
[application]
name = "watch-hostile"

[[trigger.key-value]]
store = "default"
prefix = "hostile/"
component = "hostile"

[component.hostile]
source = "hostile.wasm"
key_value_stores = ["default"]
"""


def test_a_looping_watcher_fails_its_delivery_and_the_runner_moves_on(
    hostile_wasm: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "hostile.wasm").write_bytes(hostile_wasm.read_bytes())
    (tmp_path / "wasikv.toml").write_text(WATCH_MANIFEST)
    loaded = load_app(tmp_path / "wasikv.toml")
    with Host(loaded.stores, cache_dir=COMPILE_CACHE) as host:
        watchers = WatchTriggers.from_app(loaded, host, retry=RetryPolicy((0.1,)), timeout=0.5)
        runner = watchers.runners[0]
        bucket = host.bucket()
        with watchers, caplog.at_level("WARNING", logger="wasikv.watch"):
            bucket.set("hostile/a/ok", b"1")
            bucket.set("hostile/b/loop", b"1")
            bucket.set("hostile/c/ok", b"1")
            assert runner.wait_for(bucket.store.last_change(), timeout=30)
        # Both attempts of the looping change failed on the deadline; it was
        # dropped and logged, and the changes around it were delivered.
        assert runner.dropped == 1 and runner.failures == 2 and runner.delivered == 2
        assert bucket.get("seen/hostile/a/ok") == b'{"ok": true}'
        assert bucket.get("seen/hostile/c/ok") == b'{"ok": true}'
        assert bucket.get("seen/hostile/b/loop") is None
        dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
        assert len(dropped) == 1 and "'hostile/b/loop'" in dropped[0] and "deadline of 0.5 s" in dropped[0]


_MANY_HOSTS = """
import gc
from wasikv import Host
count = 0
while count < 600:
    host = Host({"default": "memory:"}, compile_cache=False)
    host.close()
    del host
    gc.collect()
    count += 1
print(count)
"""


_FINALIZER_IN_THE_TICKER = """
import threading
from wasmtime import Engine
from wasikv.runtime.deadlines import TICK, ticker
engine = Engine()
ticker.register(engine)
# A host's finalizer unregisters its engine wherever the garbage collector
# runs: also in the epoch thread, while it holds its lock (an allocation
# there starts a collection). This thread stands in for it.
with ticker._lock:
    ticker.unregister(engine)
done = threading.Event()
ticker.register(Engine())  # the ticker goes on: it takes the lock and drops the engine
threading.Timer(3 * TICK, done.set).start()
done.wait()
print("ok")
"""


def test_a_finalizer_unregistering_inside_the_tickers_lock_never_deadlocks() -> None:
    # Seen in a full test run: the epoch thread ran a host's finalizer inside
    # its critical section and waited for itself; every thread that then made
    # or dropped a host hung with it.
    done = subprocess.run(
        [sys.executable, "-c", _FINALIZER_IN_THE_TICKER], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr[-2000:]


def test_hosts_come_and_go_while_the_epoch_ticker_runs() -> None:
    # The ticker once held engines weakly and could advance one whose native
    # engine a finaliser was deleting: a segfault within 8 s (about 1,400
    # hosts) in about two runs of three before the fix (a race: this cannot
    # catch it every time). A count, not a time: under load fewer hosts fit.
    done = subprocess.run([sys.executable, "-c", _MANY_HOSTS], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) == 600
