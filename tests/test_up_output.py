"""What `wasikv up` writes around a request: the guest's lines before the request's access line.

The portable guest (tests/guests/portable), built for wasikv's HTTP world
(record request and response) and for the standard wasi:http one (streamed),
serves `POST /mirror`: it prints the body's lines.
"""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from .support import guest_wasm
from .test_portable import HTTP_TRIGGER, PROXY, serving

pytestmark = pytest.mark.component


@pytest.fixture(params=[HTTP_TRIGGER, PROXY])
def world(request: pytest.FixtureRequest) -> str:
    """wasikv's HTTP world, and the standard wasi:http one."""
    return str(request.param)


def test_a_guests_lines_come_before_its_requests_access_line(world: str, tmp_path: Path) -> None:
    with serving(guest_wasm("portable", world), tmp_path) as server:
        with httpx.Client(base_url=server.base, timeout=60) as client:
            for number in range(1, 4):
                body = f"request {number}: first line\nrequest {number}: second line\n"
                assert client.post("/mirror", content=body).text == "mirrored\n"
        server.proc.send_signal(signal.SIGINT)
        _, err = server.proc.communicate(timeout=60)
    # However requests overlap, no access line comes before the lines of a request of its own.
    printed = logged = 0
    for line in err.splitlines():
        if "[app] request" in line and line.endswith(": second line"):
            printed += 1
        elif "POST /mirror 200" in line:
            logged += 1
            assert logged <= printed, err
    assert logged == printed == 3, err
