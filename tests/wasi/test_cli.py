"""wasi:cli stdin, stdout and stderr: an empty stdin, output into the instance's streams or the process's."""

from __future__ import annotations

import io
import sys

import pytest

from wasikv.interfaces.wasi.state import WasiInstance
from wasikv.runtime.codec import Case, Err, Ok
from wasikv.triggers._output import CapturedOutput

from .conftest import call, make_instance

STREAMS = "wasi:io/streams"


def test_stdin_is_empty(instance: WasiInstance) -> None:
    stdin = call(instance, "wasi:cli/stdin", "get-stdin")
    assert call(instance, STREAMS, "[method]input-stream.read", stdin, 10) == Err(Case("closed"))
    assert call(instance, STREAMS, "[method]input-stream.blocking-read", stdin, 10) == Err(Case("closed"))


def test_output_goes_to_the_instance_streams() -> None:
    instance = make_instance()
    instance.stdout, instance.stderr = CapturedOutput(100), CapturedOutput(100)
    stdout = call(instance, "wasi:cli/stdout", "get-stdout")
    stderr = call(instance, "wasi:cli/stderr", "get-stderr")
    assert call(instance, STREAMS, "[method]output-stream.blocking-write-and-flush", stdout, b"out\n") == Ok()
    permit = call(instance, STREAMS, "[method]output-stream.check-write", stderr)
    assert isinstance(permit, Ok) and permit.value >= 4096
    assert call(instance, STREAMS, "[method]output-stream.write", stderr, b"err\n") == Ok()
    assert call(instance, STREAMS, "[method]output-stream.blocking-flush", stderr) == Ok()
    assert instance.stdout.getvalue() == b"out\n"
    assert instance.stderr.getvalue() == b"err\n"


def test_output_goes_to_the_process_streams_without_instance_ones(
    instance: WasiInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, err = io.TextIOWrapper(io.BytesIO()), io.TextIOWrapper(io.BytesIO())
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    for name, stream in [("stdout", out), ("stderr", err)]:
        guest = call(instance, f"wasi:cli/{name}", f"get-{name}")
        assert call(instance, STREAMS, "[method]output-stream.blocking-write-and-flush", guest, b"hi") == Ok()
        assert stream.buffer.getvalue() == b"hi"
