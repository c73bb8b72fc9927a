"""What `wasikv up` writes around a request: the guest's lines before the request's access line,
and a `date` and a `server` header once each (the guest's own when it set them).

The portable guest (tests/guests/portable), built for wasikv's HTTP world
(record request and response) and for the standard wasi:http one (streamed),
serves `POST /mirror`: it prints the body's lines and answers with the
headers the request asks for.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import pytest

from .support import guest_wasm
from .test_portable import HTTP_TRIGGER, PROXY, serving
from .test_up import Server

pytestmark = pytest.mark.component

GUEST_DATE = "Tue, 01 Dec 2026 08:00:00 GMT"


@pytest.fixture(params=[HTTP_TRIGGER, PROXY])
def world(request: pytest.FixtureRequest) -> str:
    """wasikv's HTTP world, and the standard wasi:http one."""
    return str(request.param)


@pytest.fixture
def served(world: str, tmp_path: Path) -> Iterator[Server]:
    with serving(guest_wasm("portable", world), tmp_path) as server:
        yield server


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


def test_the_guests_date_and_server_headers_win_and_come_once(served: Server) -> None:
    with httpx.Client(base_url=served.base, timeout=60) as client:
        own = client.post("/mirror", headers={"x-set-date": GUEST_DATE, "x-set-server": "guest/1.0"})
        plain = client.post("/mirror")
    assert own.status_code == 200 and plain.status_code == 200
    assert own.headers.get_list("date") == [GUEST_DATE]
    assert own.headers.get_list("server") == ["guest/1.0"]
    # Without its own, a response gets the server's: one date (now), one server.
    (date,) = plain.headers.get_list("date")
    assert parsedate_to_datetime(date).year >= 2026
    assert plain.headers.get_list("server") == ["uvicorn"]
