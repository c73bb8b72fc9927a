"""wasi:http/types and outgoing-handler in Python, called as the dispatcher calls them.

Each call goes through `BODIES` with a real `WasiInstance` (the
`instance` and `in_thread` fixtures are conftest's); an `own<T>`
argument is the object itself, a dropped handle is its `on_drop()`, as the
dispatcher does. What is expected is what wasmtime-wasi-http does.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wasikv.interfaces.wasi import io
from wasikv.interfaces.wasi.http import (
    BODIES,
    RESOURCES,
    Fields,
    IncomingBodySource,
    IncomingRequest,
    OutboundRequest,
    OutgoingBodySink,
    PendingResponse,
    ResponseHead,
    ResponseOutparam,
    error_code,
)
from wasikv.interfaces.wasi.http.errors import is_error_code
from wasikv.interfaces.wasi.http.fields import FORBIDDEN_HEADERS, MAX_FIELD_BYTES, MAX_FIELDS
from wasikv.interfaces.wasi.state import WasiInstance
from wasikv.runtime._capi import GuestFault
from wasikv.runtime.codec import Case, Err, Ok

from .conftest import make_instance

TYPES = "wasi:http/types"
WIT = Path(__file__).resolve().parents[2] / "wit" / "deps" / "http" / "types.wit"
Starter = Callable[[Callable[[], object]], threading.Thread]


def call(instance: WasiInstance, function: str, *args: Any) -> Any:
    """Call a `wasi:http/types` function as the dispatcher does."""
    return BODIES[TYPES, function](instance, *args)


def io_call(instance: WasiInstance, function: str, *args: Any) -> Any:
    """Call a `wasi:io/streams` function as the dispatcher does."""
    return io.BODIES["wasi:io/streams", function](instance, *args)


def ok(result: Any) -> Any:
    """The value of an `ok` result (failing the test on an `err`)."""
    assert isinstance(result, Ok), result
    return result.value


def eventually(condition: Callable[[], bool]) -> None:
    """Wait until `condition()` holds (a state another thread reaches), failing after a generous while."""
    until = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < until, "the condition never held"
        time.sleep(0.002)


def fields(instance: WasiInstance, *pairs: tuple[str, bytes]) -> Fields:
    """Mutable fields from `pairs` (through `from-list`)."""
    made: Fields = ok(call(instance, "[static]fields.from-list", list(pairs)))
    return made


def request(instance: WasiInstance, body: IncomingBodySource | None = None, **given: Any) -> IncomingRequest:
    """An incoming request as the server builds it."""
    values: dict[str, Any] = {
        "method": "GET",
        "path_with_query": "/",
        "scheme": "http",
        "authority": "example.com",
        "headers": [],
    }
    values.update(given)
    return IncomingRequest(instance, body=body, **values)


def read_all(instance: WasiInstance, stream: io.InputStream) -> bytes:
    """Everything a guest reads from `stream` with blocking reads, until `closed`."""
    data = bytearray()
    while True:
        result = io_call(instance, "[method]input-stream.blocking-read", stream, 65536)
        if isinstance(result, Err):
            assert result.value == Case("closed"), result
            return bytes(data)
        data += result.value


def write_all(instance: WasiInstance, stream: io.OutputStream, data: bytes) -> None:
    """Write `data` as componentize-py does: 4096-byte blocking writes."""
    for start in range(0, len(data), 4096):
        ok(
            io_call(
                instance, "[method]output-stream.blocking-write-and-flush", stream, data[start : start + 4096]
            )
        )


# --------------------------------------------------------------- coverage


def _wit_functions() -> set[str]:
    """Every function of the `types` interface, named as the component model names them."""
    names: set[str] = set()
    resource = None
    for line in WIT.read_text().splitlines():
        line = line.split("//", 1)[0].strip()
        if match := re.match(r"resource ([\w-]+) \{", line):
            resource = match[1]
        elif line == "}" and resource is not None:
            resource = None
        elif line.startswith("constructor("):
            names.add(f"[constructor]{resource}")
        elif match := re.match(r"%?([\w-]+): (static )?func", line):
            name = match[1]
            if resource is None:
                names.add(name)
            else:
                names.add(f"[{'static' if match[2] else 'method'}]{resource}.{name}")
    return names


def test_every_function_and_resource_of_the_wit_has_a_body() -> None:
    expected = _wit_functions()
    assert len(expected) > 40
    assert {name for interface, name in BODIES if interface == TYPES} == expected
    assert ("wasi:http/outgoing-handler", "handle") in BODIES
    resources = set(re.findall(r"resource ([\w-]+) \{", WIT.read_text()))
    assert {name for _, name in RESOURCES} == resources


# ------------------------------------------------------------------ fields


def test_names_are_case_insensitive_and_entries_lower_case_grouped_by_name(instance: WasiInstance) -> None:
    made = call(instance, "[constructor]fields")
    ok(call(instance, "[method]fields.append", made, "X-A", b"1"))
    ok(call(instance, "[method]fields.append", made, "Content-Type", b"text/plain"))
    ok(call(instance, "[method]fields.append", made, "x-a", b"2"))
    assert call(instance, "[method]fields.get", made, "X-a") == [b"1", b"2"]
    assert call(instance, "[method]fields.has", made, "CONTENT-TYPE")
    assert not call(instance, "[method]fields.has", made, "x-b")
    assert call(instance, "[method]fields.get", made, "x-b") == []
    # HeaderMap's order: names as first set, each name's values together.
    assert call(instance, "[method]fields.entries", made) == [
        ("x-a", b"1"),
        ("x-a", b"2"),
        ("content-type", b"text/plain"),
    ]


@pytest.mark.parametrize("name", ["", "a b", "x:y", "é", "a\r\nb", "(x)", "a/b", "[x]", "x\x00"])
def test_an_invalid_name_is_invalid_syntax_everywhere(instance: WasiInstance, name: str) -> None:
    made = fields(instance)
    invalid = Err(Case("invalid-syntax"))
    assert call(instance, "[static]fields.from-list", [(name, b"v")]) == invalid
    assert call(instance, "[method]fields.append", made, name, b"v") == invalid
    assert call(instance, "[method]fields.set", made, name, [b"v"]) == invalid
    assert call(instance, "[method]fields.delete", made, name) == invalid
    assert call(instance, "[method]fields.get", made, name) == []
    assert not call(instance, "[method]fields.has", made, name)


@pytest.mark.parametrize("value", [b"a\nb", b"a\rb", b"\x00", b"a\x7fb", b"\x1f"])
def test_a_value_with_control_bytes_is_invalid_syntax(instance: WasiInstance, value: bytes) -> None:
    invalid = Err(Case("invalid-syntax"))
    assert call(instance, "[static]fields.from-list", [("x", value)]) == invalid
    made = fields(instance)
    assert call(instance, "[method]fields.append", made, "x", value) == invalid
    assert call(instance, "[method]fields.set", made, "x", [b"fine", value]) == invalid
    assert call(instance, "[method]fields.entries", made) == []


def test_tabs_obs_text_and_empty_values_are_valid(instance: WasiInstance) -> None:
    made = fields(instance, ("x", b"a\tb"), ("y", b"caf\xc3\xa9 \xff"), ("z", b""))
    assert call(instance, "[method]fields.get", made, "z") == [b""]
    assert call(instance, "[method]fields.has", made, "z")
    assert len(call(instance, "[method]fields.entries", made)) == 3


@pytest.mark.parametrize("name", [*sorted(FORBIDDEN_HEADERS), "Host", "CONNECTION", "Transfer-Encoding"])
def test_forbidden_names_are_refused(instance: WasiInstance, name: str) -> None:
    forbidden = Err(Case("forbidden"))
    assert call(instance, "[static]fields.from-list", [("ok", b"1"), (name, b"v")]) == forbidden
    made = fields(instance)
    assert call(instance, "[method]fields.append", made, name, b"v") == forbidden
    assert call(instance, "[method]fields.set", made, name, [b"v"]) == forbidden
    assert call(instance, "[method]fields.delete", made, name) == forbidden


def test_forbidden_is_wasmtimes_exact_list_not_a_prefix(instance: WasiInstance) -> None:
    assert FORBIDDEN_HEADERS == {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "host",
        "http2-settings",
    }
    fields(instance, ("proxy-status", b"x"), ("te", b"trailers"), ("content-length", b"0"))


def test_content_length_must_be_digits_and_is_kept_canonical(instance: WasiInstance) -> None:
    made = fields(instance, ("Content-Length", b"007"))
    assert call(instance, "[method]fields.get", made, "content-length") == [b"7"]
    for bad in (b"+5", b"-5", b" 5", b"5 ", b"", b"0x5", b"1" * 30, "٣".encode()):
        assert call(instance, "[method]fields.set", made, "content-length", [bad]) == Err(
            Case("invalid-syntax")
        )
    ok(call(instance, "[method]fields.set", made, "content-length", [b"18446744073709551615"]))


def test_set_replaces_in_place_and_no_values_removes(instance: WasiInstance) -> None:
    made = fields(instance, ("a", b"1"), ("b", b"2"), ("c", b"3"))
    ok(call(instance, "[method]fields.set", made, "B", [b"x", b"y"]))
    assert call(instance, "[method]fields.entries", made) == [
        ("a", b"1"),
        ("b", b"x"),
        ("b", b"y"),
        ("c", b"3"),
    ]
    ok(call(instance, "[method]fields.set", made, "d", []))
    assert not call(instance, "[method]fields.has", made, "d")
    ok(call(instance, "[method]fields.set", made, "a", []))
    # Removal moves the last name into the freed place, as HeaderMap does.
    assert call(instance, "[method]fields.entries", made) == [("c", b"3"), ("b", b"x"), ("b", b"y")]


def test_delete_removes_every_value_and_missing_names_are_no_error(instance: WasiInstance) -> None:
    made = fields(instance, ("a", b"1"), ("b", b"2"), ("a", b"3"), ("c", b"4"), ("d", b"5"))
    ok(call(instance, "[method]fields.delete", made, "A"))
    ok(call(instance, "[method]fields.delete", made, "never-there"))
    assert call(instance, "[method]fields.entries", made) == [("d", b"5"), ("b", b"2"), ("c", b"4")]


def test_clone_is_a_mutable_deep_copy(instance: WasiInstance) -> None:
    original = fields(instance, ("a", b"1"))
    copy = call(instance, "[method]fields.clone", original)
    ok(call(instance, "[method]fields.append", copy, "a", b"2"))
    assert call(instance, "[method]fields.get", original, "a") == [b"1"]
    frozen = request(instance, headers=[("a", b"1")]).headers()
    thawed = call(instance, "[method]fields.clone", frozen)
    ok(call(instance, "[method]fields.append", thawed, "a", b"2"))
    assert call(instance, "[method]fields.get", frozen, "a") == [b"1"]


def test_immutable_fields_refuse_every_change_in_wasmtimes_order(instance: WasiInstance) -> None:
    frozen = request(instance, headers=[("a", b"1")]).headers()
    immutable = Err(Case("immutable"))
    assert call(instance, "[method]fields.set", frozen, "a", [b"2"]) == immutable
    assert call(instance, "[method]fields.append", frozen, "b", b"2") == immutable
    assert call(instance, "[method]fields.delete", frozen, "a") == immutable
    # A bad name is told first, then a forbidden one; `append` checks its value before mutability.
    assert call(instance, "[method]fields.set", frozen, "a b", [b"2"]) == Err(Case("invalid-syntax"))
    assert call(instance, "[method]fields.delete", frozen, "host") == Err(Case("forbidden"))
    assert call(instance, "[method]fields.set", frozen, "a", [b"\n"]) == immutable
    assert call(instance, "[method]fields.append", frozen, "a", b"\n") == Err(Case("invalid-syntax"))
    assert call(instance, "[method]fields.entries", frozen) == [("a", b"1")]


def test_too_many_values_or_bytes_trap(instance: WasiInstance) -> None:
    made = fields(instance)
    for n in range(MAX_FIELDS):
        ok(call(instance, "[method]fields.append", made, f"x-{n}", b"v"))
    with pytest.raises(GuestFault, match="values"):
        call(instance, "[method]fields.append", made, "one-more", b"v")
    with pytest.raises(GuestFault, match="values"):
        call(instance, "[static]fields.from-list", [("x", b"v")] * (MAX_FIELDS + 1))
    # Replacing or removing values frees their room.
    ok(call(instance, "[method]fields.delete", made, "x-0"))
    ok(call(instance, "[method]fields.append", made, "one-more", b"v"))
    big = fields(instance)
    ok(call(instance, "[method]fields.set", big, "x", [b"v" * (MAX_FIELD_BYTES // 2)]))
    ok(call(instance, "[method]fields.set", big, "x", [b"w" * (MAX_FIELD_BYTES // 2)]))
    with pytest.raises(GuestFault, match="bytes"):
        call(instance, "[method]fields.append", big, "y", b"v" * (MAX_FIELD_BYTES // 2))


# ------------------------------------------------------- incoming-request


@pytest.mark.parametrize(
    ("method", "case"),
    [
        ("GET", Case("get")),
        ("PATCH", Case("patch")),
        ("get", Case("other", "get")),
        ("PURGE", Case("other", "PURGE")),
    ],
)
def test_request_method(instance: WasiInstance, method: str, case: Case) -> None:
    assert call(instance, "[method]incoming-request.method", request(instance, method=method)) == case


def test_request_target_scheme_and_authority(instance: WasiInstance) -> None:
    made = request(instance, path_with_query="/a/b?c=d", scheme="https", authority="example.com:8443")
    assert call(instance, "[method]incoming-request.path-with-query", made) == "/a/b?c=d"
    assert call(instance, "[method]incoming-request.scheme", made) == Case("HTTPS")
    assert call(instance, "[method]incoming-request.authority", made) == "example.com:8443"
    assert call(instance, "[method]incoming-request.scheme", request(instance, scheme="http")) == Case("HTTP")
    assert call(instance, "[method]incoming-request.scheme", request(instance, scheme="ws")) == Case(
        "other", "ws"
    )


def test_request_headers_are_immutable_and_lose_forbidden_names(instance: WasiInstance) -> None:
    made = request(
        instance,
        headers=[(b"Host", b"example.com"), (b"X-Id", b"1"), ("connection", b"close"), (b"x-id", b"2")],
    )
    headers = call(instance, "[method]incoming-request.headers", made)
    assert call(instance, "[method]fields.entries", headers) == [("x-id", b"1"), ("x-id", b"2")]
    assert call(instance, "[method]fields.append", headers, "x", b"1") == Err(Case("immutable"))
    # wasmtime gives a copy, not a child: the request may go first.
    made.on_drop()
    assert call(instance, "[method]fields.get", headers, "x-id") == [b"1", b"2"]


def test_consume_and_stream_work_once(instance: WasiInstance) -> None:
    made = request(instance, IncomingBodySource.complete(instance, b"hello"))
    body = ok(call(instance, "[method]incoming-request.consume", made))
    assert call(instance, "[method]incoming-request.consume", made) == Err()
    stream = ok(call(instance, "[method]incoming-body.stream", body))
    assert call(instance, "[method]incoming-body.stream", body) == Err()
    assert read_all(instance, stream) == b"hello"


def test_finishing_or_dropping_a_body_while_its_stream_lives_traps(instance: WasiInstance) -> None:
    body = ok(call(instance, "[method]incoming-request.consume", request(instance)))
    stream = ok(call(instance, "[method]incoming-body.stream", body))
    with pytest.raises(GuestFault, match="children"):
        call(instance, "[static]incoming-body.finish", body)
    with pytest.raises(GuestFault, match="children"):
        body.on_drop()
    stream.on_drop()
    trailers = call(instance, "[static]incoming-body.finish", body)
    assert call(instance, "[method]future-trailers.get", trailers) == Ok(Ok(None))


def test_request_body_is_read_with_backpressure_from_a_feeding_thread(
    instance: WasiInstance, in_thread: Starter
) -> None:
    source = IncomingBodySource(instance, capacity=1024)
    data = bytes(range(256)) * 400
    fed: list[bool] = []
    feeder = in_thread(lambda: fed.append(source.feed(data)))
    # The guest reads nothing yet: the feeder fills the queue and waits.
    eventually(lambda: source.free == 0)
    assert feeder.is_alive()
    assert source.buffered == 1024
    body = ok(call(instance, "[method]incoming-request.consume", request(instance, source)))
    stream = ok(call(instance, "[method]incoming-body.stream", body))
    received = bytearray()
    while len(received) < len(data):
        received += ok(io_call(instance, "[method]input-stream.blocking-read", stream, 4096))
        assert source.buffered <= 1024
    feeder.join(30)
    source.finish()
    assert read_all(instance, stream) == b""
    assert bytes(received) == data
    assert fed == [True]


def test_a_body_dropped_unread_tells_the_feeder_to_stop(instance: WasiInstance, in_thread: Starter) -> None:
    source = IncomingBodySource(instance, capacity=16)
    fed: list[bool] = []
    in_thread(lambda: fed.append(source.feed(b"x" * 1000)))
    eventually(lambda: source.free == 0)
    body = ok(call(instance, "[method]incoming-request.consume", request(instance, source)))
    body.on_drop()
    eventually(lambda: bool(fed))
    assert fed == [False]
    assert source.closed


def test_a_request_dropped_unconsumed_closes_its_body(instance: WasiInstance) -> None:
    source = IncomingBodySource(instance)
    request(instance, source).on_drop()
    assert source.closed


def test_the_deadline_stops_a_blocked_body_read() -> None:
    instance = make_instance(0.05)
    deadline = instance.deadline
    assert deadline is not None
    source = IncomingBodySource(instance)
    body = ok(call(instance, "[method]incoming-request.consume", request(instance, source)))
    stream = ok(call(instance, "[method]incoming-body.stream", body))
    with pytest.raises(GuestFault, match="timeout"):
        io_call(instance, "[method]input-stream.blocking-read", stream, 10)
    assert deadline.stopped == "timeout"


# ------------------------------------------------------------- trailers


def test_trailers_round_trip(instance: WasiInstance) -> None:
    source = IncomingBodySource(instance)
    source.offer(b"body")
    body = ok(call(instance, "[method]incoming-request.consume", request(instance, source)))
    stream = ok(call(instance, "[method]incoming-body.stream", body))
    assert ok(io_call(instance, "[method]input-stream.read", stream, 100)) == b"body"
    stream.on_drop()
    future = call(instance, "[static]incoming-body.finish", body)
    pollable = call(instance, "[method]future-trailers.subscribe", future)
    assert not pollable.ready()
    assert call(instance, "[method]future-trailers.get", future) is None
    source.finish([("X-Checksum", b"abc"), ("Host", b"dropped"), ("x-checksum", b"def")])
    pollable.block()
    result = call(instance, "[method]future-trailers.get", future)
    trailers = ok(ok(result))
    assert call(instance, "[method]fields.entries", trailers) == [
        ("x-checksum", b"abc"),
        ("x-checksum", b"def"),
    ]
    assert call(instance, "[method]fields.delete", trailers, "x-checksum") == Err(Case("immutable"))
    # `ok` once, `err` ever after.
    assert call(instance, "[method]future-trailers.get", future) == Err()
    # The pollable is a child of the future.
    with pytest.raises(GuestFault, match="children"):
        future.on_drop()
    pollable.on_drop()
    future.on_drop()


def test_future_trailers_drains_what_the_guest_left_unread(
    instance: WasiInstance, in_thread: Starter
) -> None:
    source = IncomingBodySource(instance, capacity=64)

    def produce() -> None:
        assert source.feed(b"z" * 10_000)
        source.finish([("done", b"yes")])

    in_thread(produce)
    body = ok(call(instance, "[method]incoming-request.consume", request(instance, source)))
    future = call(instance, "[static]incoming-body.finish", body)
    io.BODIES["wasi:io/poll", "[method]pollable.block"](
        instance, call(instance, "[method]future-trailers.subscribe", future)
    )
    trailers = ok(ok(call(instance, "[method]future-trailers.get", future)))
    assert trailers.get("done") == [b"yes"]


def test_a_broken_body_fails_the_read_with_an_http_error_code_and_the_trailers(
    instance: WasiInstance,
) -> None:
    source = IncomingBodySource(instance)
    source.offer(b"part")
    source.fail_with(Case("HTTP-request-body-size", 4))
    body = ok(call(instance, "[method]incoming-request.consume", request(instance, source)))
    stream = ok(call(instance, "[method]incoming-body.stream", body))
    assert ok(io_call(instance, "[method]input-stream.read", stream, 100)) == b"part"
    failed = io_call(instance, "[method]input-stream.read", stream, 100)
    assert isinstance(failed, Err) and failed.value.name == "last-operation-failed"
    error = failed.value.payload
    assert call(instance, "http-error-code", error) == Case("HTTP-request-body-size", 4)
    assert call(instance, "http-error-code", io.IoError("not http")) is None
    stream.on_drop()
    future = call(instance, "[static]incoming-body.finish", body)
    assert call(instance, "[method]future-trailers.get", future) == Ok(Err(Case("HTTP-request-body-size", 4)))


def test_dropping_future_trailers_before_the_end_stops_the_feeder(instance: WasiInstance) -> None:
    source = IncomingBodySource(instance)
    body = ok(call(instance, "[method]incoming-request.consume", request(instance, source)))
    future = call(instance, "[static]incoming-body.finish", body)
    future.on_drop()
    assert source.closed
    assert not source.feed(b"more")


# ------------------------------------------------------ outgoing-response


def response_with_body(
    instance: WasiInstance, *headers: tuple[str, bytes]
) -> tuple[Any, Any, io.OutputStream]:
    """A response, its body and the body's stream, as a guest makes them."""
    response = call(instance, "[constructor]outgoing-response", fields(instance, *headers))
    body = ok(call(instance, "[method]outgoing-response.body", response))
    stream = ok(call(instance, "[method]outgoing-body.write", body))
    return response, body, stream


def test_status_code_defaults_to_200_and_must_be_100_to_999(instance: WasiInstance) -> None:
    response = call(instance, "[constructor]outgoing-response", fields(instance))
    assert call(instance, "[method]outgoing-response.status-code", response) == 200
    for bad in (0, 99, 1000, 65535):
        assert call(instance, "[method]outgoing-response.set-status-code", response, bad) == Err()
    for good in (100, 404, 999):
        ok(call(instance, "[method]outgoing-response.set-status-code", response, good))
        assert call(instance, "[method]outgoing-response.status-code", response) == good


def test_headers_given_to_a_response_become_immutable(instance: WasiInstance) -> None:
    given = fields(instance, ("x", b"1"))
    response = call(instance, "[constructor]outgoing-response", given)
    assert call(instance, "[method]fields.append", given, "y", b"2") == Err(Case("immutable"))
    headers = call(instance, "[method]outgoing-response.headers", response)
    assert call(instance, "[method]fields.set", headers, "x", [b"2"]) == Err(Case("immutable"))
    assert call(instance, "[method]fields.entries", headers) == [("x", b"1")]


def test_body_and_write_work_once(instance: WasiInstance) -> None:
    response, body, _stream = response_with_body(instance)
    assert call(instance, "[method]outgoing-response.body", response) == Err()
    assert call(instance, "[method]outgoing-body.write", body) == Err()


def test_finishing_or_dropping_an_outgoing_body_while_its_stream_lives_traps(instance: WasiInstance) -> None:
    _response, body, stream = response_with_body(instance)
    with pytest.raises(GuestFault, match="children"):
        call(instance, "[static]outgoing-body.finish", body, None)
    with pytest.raises(GuestFault, match="children"):
        body.on_drop()
    stream.on_drop()
    ok(call(instance, "[static]outgoing-body.finish", body, None))


def test_outparam_hands_over_status_headers_and_a_streaming_body(
    instance: WasiInstance, in_thread: Starter
) -> None:
    heads: list[ResponseHead | Case] = []
    outparam = ResponseOutparam(instance, heads.append)
    response, body, stream = response_with_body(instance, ("Content-Type", b"text/plain"), ("X-A", b"1"))
    ok(call(instance, "[method]outgoing-response.set-status-code", response, 201))
    call(instance, "[static]response-outparam.set", outparam, Ok(response))
    [head] = heads
    assert isinstance(head, ResponseHead)
    assert (head.status, head.headers) == (201, [("content-type", b"text/plain"), ("x-a", b"1")])
    assert outparam.response is head
    sink = head.body
    data = bytes(range(251)) * 2000
    done = threading.Event()

    def guest() -> None:
        write_all(instance, stream, data)
        stream.on_drop()
        ok(call(instance, "[static]outgoing-body.finish", body, fields(instance, ("x-sum", b"42"))))
        done.set()

    writer = in_thread(guest)
    # Nobody takes yet: the guest fills the buffer and waits.
    eventually(lambda: sink.free < 4096)
    assert writer.is_alive() and not done.is_set()
    received = bytearray()
    while chunk := sink.take(10_000):
        received += chunk
    assert bytes(received) == data
    assert sink.outcome == "finished"
    assert sink.trailers == [("x-sum", b"42")]


def test_outparam_set_with_an_error_code(instance: WasiInstance) -> None:
    heads: list[ResponseHead | Case] = []
    outparam = ResponseOutparam(instance, heads.append)
    call(instance, "[static]response-outparam.set", outparam, Err(Case("internal-error", "boom")))
    assert heads == [Case("internal-error", "boom")]


def test_outparam_set_twice_traps(instance: WasiInstance) -> None:
    outparam = ResponseOutparam(instance)
    response = call(instance, "[constructor]outgoing-response", fields(instance))
    call(instance, "[static]response-outparam.set", outparam, Ok(response))
    with pytest.raises(GuestFault, match="already set"):
        call(instance, "[static]response-outparam.set", outparam, Err(Case("HTTP-protocol-error")))


def test_an_outparam_dropped_unset_says_so(instance: WasiInstance) -> None:
    outparam = ResponseOutparam(instance)
    outparam.on_drop()
    assert outparam.dropped and outparam.response is None


def test_a_response_without_a_body_sends_an_empty_finished_one(instance: WasiInstance) -> None:
    heads: list[ResponseHead | Case] = []
    response = call(instance, "[constructor]outgoing-response", fields(instance))
    call(instance, "[static]response-outparam.set", ResponseOutparam(instance, heads.append), Ok(response))
    [head] = heads
    assert isinstance(head, ResponseHead)
    assert head.body.take(10) == b""
    assert head.body.outcome == "finished"


def test_a_dropped_outgoing_body_is_aborted_after_its_bytes(instance: WasiInstance) -> None:
    heads: list[ResponseHead | Case] = []
    response, body, stream = response_with_body(instance)
    call(instance, "[static]response-outparam.set", ResponseOutparam(instance, heads.append), Ok(response))
    write_all(instance, stream, b"partial")
    stream.on_drop()
    body.on_drop()
    [head] = heads
    assert isinstance(head, ResponseHead)
    assert head.body.outcome == "aborted"
    assert head.body.take(100) == b"partial"
    assert head.body.take(100) == b""


def test_writes_to_the_body_of_an_unsent_dropped_response_are_closed(instance: WasiInstance) -> None:
    response, _body, stream = response_with_body(instance)
    response.on_drop()
    assert io_call(instance, "[method]output-stream.check-write", stream) == Err(Case("closed"))


def test_a_client_gone_closes_the_guests_writes(instance: WasiInstance) -> None:
    heads: list[Any] = []
    response, _body, stream = response_with_body(instance)
    call(instance, "[static]response-outparam.set", ResponseOutparam(instance, heads.append), Ok(response))
    heads[0].body.close()
    assert io_call(instance, "[method]output-stream.blocking-write-and-flush", stream, b"x") == Err(
        Case("closed")
    )


def test_content_length_short_fails_finish_and_aborts(instance: WasiInstance) -> None:
    response, body, stream = response_with_body(instance, ("content-length", b"5"))
    sink: OutgoingBodySink = response._sink
    write_all(instance, stream, b"abc")
    stream.on_drop()
    assert call(instance, "[static]outgoing-body.finish", body, None) == Err(
        Case("HTTP-response-body-size", 3)
    )
    assert sink.outcome == "aborted"
    assert sink.error == Case("HTTP-response-body-size", 3)


def test_content_length_exceeded_fails_the_write_then_finish(instance: WasiInstance) -> None:
    response, body, stream = response_with_body(instance, ("content-length", b"5"))
    sink: OutgoingBodySink = response._sink
    ok(io_call(instance, "[method]output-stream.write", stream, b"abc"))
    failed = io_call(instance, "[method]output-stream.write", stream, b"def")
    assert isinstance(failed, Err) and failed.value.name == "last-operation-failed"
    assert call(instance, "http-error-code", failed.value.payload) == Case("HTTP-response-body-size", 6)
    # Bytes past the declared length never reach the client.
    assert sink.take(100) == b"abc"
    stream.on_drop()
    assert call(instance, "[static]outgoing-body.finish", body, None) == Err(
        Case("HTTP-response-body-size", 6)
    )
    assert sink.outcome == "aborted"


def test_content_length_met_finishes(instance: WasiInstance) -> None:
    response, body, stream = response_with_body(instance, ("content-length", b"5"))
    write_all(instance, stream, b"abcde")
    stream.on_drop()
    ok(call(instance, "[static]outgoing-body.finish", body, None))
    assert response._sink.outcome == "finished"


# ------------------------------------------------------------- outbound


class Sender:
    """An `OutboundSender` that records requests and answers as told."""

    def __init__(self, refuse: Case | None = None) -> None:
        self.refuse = refuse
        self.sent: list[tuple[OutboundRequest, PendingResponse]] = []

    def send(self, outbound: OutboundRequest, response: PendingResponse) -> Case | None:
        if self.refuse is None:
            self.sent.append((outbound, response))
        return self.refuse


def outgoing(
    instance: WasiInstance, *headers: tuple[str, bytes], authority: str | None = "example.com"
) -> Any:
    made = call(instance, "[constructor]outgoing-request", fields(instance, *headers))
    ok(call(instance, "[method]outgoing-request.set-authority", made, authority))
    return made


def handle(instance: WasiInstance, made: Any, options: Any = None) -> Any:
    return BODIES["wasi:http/outgoing-handler", "handle"](instance, made, options)


def test_outgoing_request_defaults_and_setters(instance: WasiInstance) -> None:
    made = call(instance, "[constructor]outgoing-request", fields(instance))
    assert call(instance, "[method]outgoing-request.method", made) == Case("get")
    for getter in ("path-with-query", "scheme", "authority"):
        assert call(instance, f"[method]outgoing-request.{getter}", made) is None
    ok(call(instance, "[method]outgoing-request.set-method", made, Case("other", "PURGE")))
    for bad in ("", "A B", "GET\n", "é"):
        assert call(instance, "[method]outgoing-request.set-method", made, Case("other", bad)) == Err()
    assert call(instance, "[method]outgoing-request.method", made) == Case("other", "PURGE")
    ok(call(instance, "[method]outgoing-request.set-scheme", made, Case("other", "ftp")))
    assert call(instance, "[method]outgoing-request.set-scheme", made, Case("other", "ht tp")) == Err()
    ok(call(instance, "[method]outgoing-request.set-scheme", made, None))
    for good in ("/", "/a/b?c=d&e", '/{"json":1}', "/caf\u00e9", "?q", "*"):
        ok(call(instance, "[method]outgoing-request.set-path-with-query", made, good))
    for bad in ("/a b", "/a\nb", "/a?b c", "/<x>", "/`"):
        assert call(instance, "[method]outgoing-request.set-path-with-query", made, bad) == Err()
    for good in ("example.com", "example.com:8080", "127.0.0.1:80", "[::1]", "[::1]:443", "u:p@h"):
        ok(call(instance, "[method]outgoing-request.set-authority", made, good))
    for bad in ("", "a b", "example.com:", "example.com:abc", "example.com:65536", "[::1", "[::1]x"):
        assert call(instance, "[method]outgoing-request.set-authority", made, bad) == Err()
    assert call(instance, "[method]outgoing-request.authority", made) == "u:p@h"


def test_request_options_keep_their_timeouts(instance: WasiInstance) -> None:
    options = call(instance, "[constructor]request-options")
    for name in ("connect-timeout", "first-byte-timeout", "between-bytes-timeout"):
        assert call(instance, f"[method]request-options.{name}", options) is None
        ok(call(instance, f"[method]request-options.set-{name}", options, 1_500_000_000))
        assert call(instance, f"[method]request-options.{name}", options) == 1_500_000_000
    ok(call(instance, "[method]request-options.set-connect-timeout", options, None))
    assert call(instance, "[method]request-options.connect-timeout", options) is None


def test_without_a_sender_every_request_is_denied(instance: WasiInstance) -> None:
    made = outgoing(instance)
    body = ok(call(instance, "[method]outgoing-request.body", made))
    stream = ok(call(instance, "[method]outgoing-body.write", body))
    assert handle(instance, made) == Err(Case("HTTP-request-denied"))
    assert io_call(instance, "[method]output-stream.check-write", stream) == Err(Case("closed"))


def test_handle_completes_the_request_and_the_response_arrives_later(
    instance: WasiInstance, in_thread: Starter
) -> None:
    sender = Sender()
    instance.http_sender = sender  # type: ignore[attr-defined]
    made = outgoing(instance, ("X-Id", b"7"), ("content-length", b"4"))
    ok(call(instance, "[method]outgoing-request.set-method", made, Case("post")))
    body = ok(call(instance, "[method]outgoing-request.body", made))
    options = call(instance, "[constructor]request-options")
    ok(call(instance, "[method]request-options.set-first-byte-timeout", options, 2_000_000_000))
    future = ok(handle(instance, made, options))
    [(sent, pending)] = sender.sent
    assert (sent.method, sent.scheme, sent.authority, sent.path_with_query) == (
        "POST",
        "https",
        "example.com",
        "/",
    )
    assert sent.headers == [("host", b"example.com"), ("x-id", b"7"), ("content-length", b"4")]
    assert sent.timeouts.first_byte == 2.0 and sent.timeouts.connect is None
    # The guest writes the body after `handle`, as it is sent.
    stream = ok(call(instance, "[method]outgoing-body.write", body))
    write_all(instance, stream, b"ping")
    stream.on_drop()
    ok(call(instance, "[static]outgoing-body.finish", body, None))
    assert sent.body.take(100) == b"ping" and sent.body.outcome == "finished"

    assert call(instance, "[method]future-incoming-response.get", future) is None
    pollable = call(instance, "[method]future-incoming-response.subscribe", future)

    def answer() -> None:
        pending.resolve(
            201,
            [(b"Content-Type", b"text/plain"), (b"Transfer-Encoding", b"chunked")],
            IncomingBodySource.complete(instance, b"pong", [("x-t", b"1")]),
        )

    in_thread(answer)
    pollable.block()
    response = ok(ok(call(instance, "[method]future-incoming-response.get", future)))
    assert call(instance, "[method]future-incoming-response.get", future) == Err()
    assert call(instance, "[method]incoming-response.status", response) == 201
    headers = call(instance, "[method]incoming-response.headers", response)
    assert call(instance, "[method]fields.entries", headers) == [("content-type", b"text/plain")]
    assert call(instance, "[method]fields.append", headers, "x", b"1") == Err(Case("immutable"))
    incoming = ok(call(instance, "[method]incoming-response.consume", response))
    assert call(instance, "[method]incoming-response.consume", response) == Err()
    reader = ok(call(instance, "[method]incoming-body.stream", incoming))
    assert read_all(instance, reader) == b"pong"
    reader.on_drop()
    trailers = ok(
        ok(
            call(
                instance,
                "[method]future-trailers.get",
                call(instance, "[static]incoming-body.finish", incoming),
            )
        )
    )
    assert trailers.pairs() == [("x-t", b"1")]


def test_a_request_body_past_its_content_length_is_a_request_body_size_error(instance: WasiInstance) -> None:
    made = outgoing(instance, ("content-length", b"2"))
    body = ok(call(instance, "[method]outgoing-request.body", made))
    stream = ok(call(instance, "[method]outgoing-body.write", body))
    failed = io_call(instance, "[method]output-stream.blocking-write-and-flush", stream, b"abc")
    assert call(instance, "http-error-code", failed.value.payload) == Case("HTTP-request-body-size", 3)
    stream.on_drop()
    assert call(instance, "[static]outgoing-body.finish", body, None) == Err(
        Case("HTTP-request-body-size", 3)
    )


def test_a_failed_request_is_an_error_code_from_the_future(instance: WasiInstance) -> None:
    sender = Sender()
    instance.http_sender = sender  # type: ignore[attr-defined]
    future = ok(handle(instance, outgoing(instance)))
    sender.sent[0][1].fail(Case("connection-refused"))
    assert call(instance, "[method]future-incoming-response.get", future) == Ok(
        Err(Case("connection-refused"))
    )


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (("set-authority", None), "HTTP-request-URI-invalid"),
        (("set-scheme", Case("other", "ftp")), "HTTP-protocol-error"),
        (("set-scheme", Case("other", "HTTP")), "HTTP-protocol-error"),
        (("set-scheme", Case("other", "")), "HTTP-protocol-error"),
    ],
)
def test_handle_refuses_what_wasmtime_refuses(
    instance: WasiInstance, change: tuple[str, Any], code: str
) -> None:
    sender = Sender()
    instance.http_sender = sender  # type: ignore[attr-defined]
    made = outgoing(instance)
    ok(call(instance, f"[method]outgoing-request.{change[0]}", made, change[1]))
    assert handle(instance, made) == Err(Case(code))
    assert sender.sent == []


def test_a_scheme_spelt_as_other_http_is_http(instance: WasiInstance) -> None:
    sender = Sender()
    instance.http_sender = sender  # type: ignore[attr-defined]
    made = outgoing(instance)
    ok(call(instance, "[method]outgoing-request.set-scheme", made, Case("other", "http")))
    ok(handle(instance, made))
    assert sender.sent[0][0].scheme == "http"


def test_a_sender_may_refuse_before_sending(instance: WasiInstance) -> None:
    instance.http_sender = Sender(refuse=Case("HTTP-request-denied"))  # type: ignore[attr-defined]
    assert handle(instance, outgoing(instance)) == Err(Case("HTTP-request-denied"))


def test_a_future_dropped_before_the_response_cancels_it(instance: WasiInstance) -> None:
    sender = Sender()
    instance.http_sender = sender  # type: ignore[attr-defined]
    future = ok(handle(instance, outgoing(instance)))
    pending = sender.sent[0][1]
    cancelled: list[bool] = []
    pending.on_cancel = lambda: cancelled.append(True)
    future.on_drop()
    assert pending.cancelled and cancelled == [True]
    # A response that still comes is not read by anyone.
    late = IncomingBodySource(instance)
    pending.resolve(200, [], late)
    assert late.closed


def test_an_unread_response_closes_its_body_when_dropped(instance: WasiInstance) -> None:
    sender = Sender()
    instance.http_sender = sender  # type: ignore[attr-defined]
    future = ok(handle(instance, outgoing(instance)))
    source = IncomingBodySource(instance)
    sender.sent[0][1].resolve(200, [], source)
    future.on_drop()
    assert source.closed
    sender.sent.clear()
    future = ok(handle(instance, outgoing(instance)))
    source = IncomingBodySource(instance)
    sender.sent[0][1].resolve(200, [], source)
    response = ok(ok(call(instance, "[method]future-incoming-response.get", future)))
    response.on_drop()
    assert source.closed


# ---------------------------------------------------------------- errors


def test_error_codes_are_checked_against_the_wit() -> None:
    assert error_code("DNS-error", {"rcode": "NXDOMAIN", "info-code": None}) == Case(
        "DNS-error", {"rcode": "NXDOMAIN", "info-code": None}
    )
    assert is_error_code("HTTP-request-denied")
    assert is_error_code(Case("HTTP-request-header-size", None))
    assert is_error_code(Case("HTTP-response-trailer-size", {"field-name": "x", "field-size": 3}))
    assert not is_error_code(Case("HTTP-response-trailer-size", None))
    assert not is_error_code(Case("HTTP-request-body-size", -1))
    assert not is_error_code(Case("no-such-case"))
    with pytest.raises(ValueError, match="error-code"):
        error_code("TLS-alert-received", {"alert-id": 1})
