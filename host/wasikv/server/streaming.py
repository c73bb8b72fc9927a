"""Serving a standard `wasi:http` component through ASGI, with both bodies streamed.

The guest runs on a worker thread (`WasiHttpComponent.serve`); this side,
on the event loop, feeds it the request body as the client sends it (a
request whose framing says it has none is not read from) and sends the
response head once the guest sets it, then its body as the guest writes
it. The head is held on the guest's thread for `HOLD` in case the guest
returns by then: a quick request then wakes the event loop once, with its
whole answer, rather than once for the head, once per write and once at
the end. Each direction goes through a bounded buffer, so host
memory stays bounded whatever the sizes: a guest that writes faster than
the client reads waits (and its deadline keeps running), and a client that
sends faster than the guest reads is not read from (uvicorn stops reading
the socket while its own buffer is full).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from ..errors import GuestInterrupted, GuestTimeout
from ..interfaces.wasi.http.bodies import IncomingBodySource
from ..interfaces.wasi.http.errors import describe_error_code
from ..interfaces.wasi.http.messages import ResponseHead
from ..runtime.codec import Case
from ..runtime.workers import Overloaded
from ..triggers.http_component import HOP_BY_HOP, HttpRequest, HttpResponse
from ..triggers.wasi_http_component import RequestHead, WasiHttpComponent
from .answers import overloaded, plain

if TYPE_CHECKING:
    from .asgi import WasikvApp

log = logging.getLogger("wasikv")

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: How much of the response body one ASGI message carries at most.
CHUNK = 1 << 16
# How often a request still unanswered is checked against its deadline.
_CHECK = 0.25
# Seconds past the request timeout `settled` waits for a guest still running after its response.
_SETTLE_GRACE = 1.0
# How long a response head the guest set waits on its thread for the guest to
# return, so that a quick request wakes the event loop once, not once per event.
HOLD = 0.005


class AbortedResponse(Exception):
    """The guest's response body ended without being finished: the connection must close, not complete."""


class StreamingExchange:
    """One request to a `WasiHttpComponent`, from its ASGI messages to its ASGI answer."""

    def __init__(
        self, app: WasikvApp, component: WasiHttpComponent, name: str, route: str, head: RequestHead
    ) -> None:
        self.app = app
        self.component = component
        self.name = name
        self.route = route
        self.head = head
        self._loop = asyncio.get_running_loop()
        self._source: asyncio.Future[IncomingBodySource] = self._loop.create_future()
        self._answer: asyncio.Future[ResponseHead | Case | None] = self._loop.create_future()
        self._wakeup = asyncio.Event()
        #: The status sent, once a response head has gone out.
        self.status: int | None = None
        self._done: asyncio.Future[Any] | None = None
        # The guest's answer, held while `_holding` (see `HOLD`); the lock
        # orders the guest thread's hold against the loop's release.
        self._hold_lock = threading.Lock()
        self._holding = True
        self._held: list[ResponseHead | Case | None] = []

    def _soon(self, callback: Callable[..., None], *args: Any) -> None:
        # From the guest's thread; the loop may be closing at shutdown.
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            pass

    def _wake(self) -> None:
        self._soon(self._wakeup.set)

    def _on_answer(self, answer: ResponseHead | Case | None) -> None:
        # On the guest's thread: hold the answer while the loop is still
        # waiting for the guest to return (it takes it then), else pass it on.
        with self._hold_lock:
            if self._holding:
                self._held.append(answer)
                return
        self._soon(_resolve, self._answer, answer)

    def _release(self) -> None:
        # On the loop: stop holding answers, and take the one held.
        with self._hold_lock:
            self._holding = False
            held = self._held
        if held:
            _resolve(self._answer, held[0])

    def _request(self) -> HttpRequest:
        # What the server's own answers and log lines name.
        return HttpRequest(self.head.method, self.head.path_with_query)

    async def run(self, receive: Receive, send: Send) -> int:
        """Serve the request; the status sent."""
        started: list[float] = []
        arrived = time.monotonic()

        bodiless = _bodiless(self.head)

        def on_body(source: IncomingBodySource) -> None:
            if bodiless:
                source.finish()  # nothing to read from the client
            else:
                self._soon(_resolve, self._source, source)

        def work() -> None:
            started.append(time.monotonic())
            self.component.serve(self.head, on_body=on_body, on_response=self._on_answer)

        try:
            future = self.app._pool.submit(work)
        except Overloaded as exc:
            log.warning("component %s on %s %s: 503, %s", self.name, self.head.method, self.route, exc)
            return await _sendplain(send, overloaded())
        done = self._done = asyncio.wrap_future(future)
        done.add_done_callback(_retrieve)
        pump = None if bodiless else asyncio.ensure_future(self._pump_request(receive, done))
        try:
            answer = await self._wait_answer(future, done, arrived, started)
            if isinstance(answer, HttpResponse):
                return await _sendplain(send, answer)
            return await self._send_response(answer, send, future, done, started)
        finally:
            if pump is not None:
                pump.cancel()

    async def settled(self) -> None:
        """Wait until the guest's call has ended, and with it the logging of what it printed.

        A guest may finish its response body before it returns: its output
        is logged once it has, and a server logs the request after that.
        The wait ends anyway once the guest has had its request timeout
        (a guest blocked in a host call may never end).
        """
        done = self._done
        if done is None or done.done():
            return
        timeout = self.app.request_timeout
        await asyncio.wait({done}, timeout=None if timeout is None else timeout + _SETTLE_GRACE)

    async def _wait_answer(
        self, future: Future[Any], done: asyncio.Future[Any], arrived: float, started: list[float]
    ) -> ResponseHead | HttpResponse:
        """The guest's response head, or the plain answer the server gives instead."""
        head = self.head
        timeout = HOLD
        try:
            while True:
                await asyncio.wait({self._answer, done}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if timeout == HOLD:
                    self._release()
                    timeout = _CHECK
                if self._answer.done():
                    answer = self._answer.result()
                    if isinstance(answer, ResponseHead):
                        return answer
                    why = "set no response" if answer is None else f"answered {describe_error_code(answer)}"
                    log.error("component %s on %s %s: %s", self.name, head.method, head.path_with_query, why)
                    return plain(500, "Internal Server Error")
                if done.done():
                    done.result()  # raises the guest's failure
                    return plain(500, "Internal Server Error")  # pragma: no cover - answer comes first
                if verdict := self.app._overdue(future, arrived, started):
                    return self.app._give_up(future, self.name, self.route, self._request(), verdict)
        except GuestTimeout:
            timeout = self.app.request_timeout or 0
            log.warning(
                "component %s on %s %s ran past the %g s request timeout; answered 504",
                self.name,
                head.method,
                self.route,
                timeout,
            )
            return plain(504, "Gateway Timeout")
        except GuestInterrupted:
            return plain(503, "Service Unavailable")
        except Exception as exc:
            log.error("component %s failed on %s %s: %s", self.name, head.method, head.path_with_query, exc)
            return plain(500, "Internal Server Error")

    async def _send_response(
        self,
        answer: ResponseHead,
        send: Send,
        future: Future[Any],
        done: asyncio.Future[Any],
        started: list[float],
    ) -> int:
        sink = answer.body
        sink.on_data = self._wake
        headers = [
            (name.encode("latin-1"), value) for name, value in answer.headers if name not in HOP_BY_HOP
        ]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        self.status = answer.status
        try:
            while True:
                self._wakeup.clear()
                chunk = sink.take_nowait(CHUNK)
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    continue
                if chunk == b"" or (chunk is None and done.done() and sink.outcome is None):
                    if sink.outcome == "finished":
                        await send({"type": "http.response.body", "body": b""})
                        return answer.status
                    if not done.done():
                        # An aborted body is usually a guest failing: its trap follows at once.
                        await asyncio.wait({done}, timeout=_CHECK)
                    raise AbortedResponse(
                        f"component {self.name!r} on {self.head.method} {self.head.path_with_query}: "
                        f"its response body ended unfinished ({_why_unfinished(sink.outcome, done)})"
                    )
                try:
                    await asyncio.wait_for(self._wakeup.wait(), _CHECK)
                except TimeoutError:
                    verdict = None if done.done() else self.app._overdue(future, 0.0, started)
                    if verdict in ("blocked", "stopping"):
                        self.app._give_up(future, self.name, self.route, self._request(), verdict)
                        raise AbortedResponse(
                            f"component {self.name!r} is blocked in a host call past its deadline"
                        ) from None
        except BaseException:
            sink.close()  # the guest's further writes fail
            raise

    async def _pump_request(self, receive: Receive, done: asyncio.Future[Any]) -> None:
        """Feed the request body into the guest's source, as fast as the guest reads it."""
        waiting, _ = await asyncio.wait({self._source, done}, return_when=asyncio.FIRST_COMPLETED)
        if self._source not in waiting:
            return
        source = self._source.result()
        source.on_space = self._wake
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    source.close()
                    return
                body: bytes = message.get("body", b"")
                view = memoryview(body)
                while view:
                    self._wakeup.clear()
                    taken = source.offer(bytes(view))
                    view = view[taken:]
                    if view:
                        await self._wakeup.wait()
                if not message.get("more_body", False):
                    source.finish()
                    return
        except Exception:  # the guest dropped the stream (closed) or finished: nothing more to feed
            return


def _bodiless(head: RequestHead) -> bool:
    """Whether a request has no body by its framing: no `transfer-encoding`, no `content-length` but 0."""
    for name, value in head.headers:
        if name == "transfer-encoding" or (name == "content-length" and value.strip() != b"0"):
            return False
    return True


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _why_unfinished(outcome: str | None, done: asyncio.Future[Any]) -> str:
    """Why a response body ended unfinished: the guest's failure when it failed, else the outcome."""
    failure = done.exception() if done.done() and not done.cancelled() else None
    if failure is not None:
        return str(failure)
    return outcome or "the guest stopped"


def _retrieve(finished: asyncio.Future[Any]) -> None:
    if not finished.cancelled():
        finished.exception()


async def _sendplain(send: Send, response: HttpResponse) -> int:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
    return response.status


__all__ = ["CHUNK", "AbortedResponse", "StreamingExchange"]
