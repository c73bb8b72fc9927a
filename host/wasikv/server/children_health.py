"""The health of `up --processes N` as a whole, as its supervisor answers `/livez` and `/readyz`.

Each child serves its own probes on a loopback port of its own and names
it in a file of the directory in `HEALTH_DIR_ENV` (`<index>.json`: pid and
port); the supervisor asks every child at each probe, in parallel:

- ready only if every child is: a child not running (dead, waiting to be
  restarted) or not answering yet (starting) is not ready, and neither is
  the whole during a shutdown;
- live unless a running child answers "not live" or does not answer within
  `CHILD_WAIT` (its event loop, or the whole process, is stuck). A child
  that died, or is still starting, is the supervisor's to restart: that is
  no reason to restart everything.
"""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .health import LOOP_WAIT, PROBE_TIMEOUT, Verdict

#: The environment variable naming the directory where children register their probe ports.
HEALTH_DIR_ENV = "WASIKV_HEALTH_DIR"
#: Seconds the supervisor waits for a child's answer.
CHILD_WAIT = max(LOOP_WAIT, PROBE_TIMEOUT) + 0.3


@dataclass(frozen=True)
class _Answer:
    #: None: the child is not answering yet (starting); else its verdict.
    verdict: Verdict | None


class ChildrenHealth:
    """Liveness and readiness of a supervisor's children (a `HealthSource`).

    There are `count` children; `running` gives the pid of each started
    one by index (None while it is not running); `stopping` says whether a
    shutdown has begun.
    """

    def __init__(
        self,
        directory: str,
        count: int,
        running: Callable[[], Mapping[int, int | None]],
        stopping: Callable[[], bool],
    ) -> None:
        self.directory = directory
        self.count = count
        self._running = running
        self._stopping = stopping

    def _port(self, index: int, pid: int) -> int | None:
        try:
            with open(os.path.join(self.directory, f"{index}.json")) as file:
                registered = json.load(file)
        except (OSError, ValueError):
            return None
        if not isinstance(registered, dict) or registered.get("pid") != pid:
            return None  # a previous child's port, or none yet
        port = registered.get("port")
        return port if isinstance(port, int) else None

    def _ask(self, index: int, pid: int, path: str) -> _Answer:
        port = self._port(index, pid)
        if port is None:
            return _Answer(None)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=CHILD_WAIT)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read(64 * 1024)
        except ConnectionRefusedError:
            return _Answer(None)
        except (OSError, http.client.HTTPException):
            return _Answer(Verdict(False, (f"did not answer within {CHILD_WAIT:g} s",)))
        finally:
            connection.close()
        if response.status == 200:
            return _Answer(Verdict(True))
        try:
            reasons = json.loads(body)["reasons"]
        except (ValueError, KeyError, TypeError):
            reasons = [f"answered {response.status}"]
        return _Answer(Verdict(False, tuple(str(reason) for reason in reasons)))

    def _ask_all(self, path: str) -> dict[int, _Answer | None]:
        """Each child's answer by index (None: not running; not started yet: starting)."""
        running = dict(self._running())
        alive = {index: pid for index, pid in running.items() if pid is not None}
        answers: dict[int, _Answer | None] = {
            index: None if index in running else _Answer(None) for index in range(self.count)
        }
        if alive:
            with ThreadPoolExecutor(len(alive), thread_name_prefix="wasikv-child-probe") as pool:
                futures = {index: pool.submit(self._ask, index, pid, path) for index, pid in alive.items()}
                for index, future in futures.items():
                    answers[index] = future.result()
        return answers

    def liveness(self) -> Verdict:
        """Live unless a running child is not (see the module's docstring)."""
        reasons: list[str] = []
        for index, answer in sorted(self._ask_all("/livez").items()):
            if answer is not None and answer.verdict is not None and not answer.verdict.ok:
                reasons.extend(f"process {index}: {reason}" for reason in answer.verdict.reasons)
        return Verdict.of(reasons)

    def readiness(self) -> Verdict:
        """Ready only when every child is, and no shutdown has begun."""
        reasons = ["shutting down"] if self._stopping() else []
        for index, answer in sorted(self._ask_all("/readyz").items()):
            if answer is None:
                reasons.append(f"process {index}: not running (restarting)")
            elif answer.verdict is None:
                reasons.append(f"process {index}: starting")
            elif not answer.verdict.ok:
                reasons.extend(f"process {index}: {reason}" for reason in answer.verdict.reasons)
        return Verdict.of(reasons)


__all__ = ["CHILD_WAIT", "HEALTH_DIR_ENV", "ChildrenHealth"]
