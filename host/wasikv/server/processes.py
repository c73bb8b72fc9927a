"""`wasikv up --processes N`: several server processes on one port, under a supervisor.

One Python process serves HTTP on one core at best: the event loop, the
ASGI layer and the host calls all hold the GIL, only the guests' own wasm
runs beside it. To use more cores before moving state to Redis or
PostgreSQL across machines, `up --processes N` starts N copies of itself:

- each child binds its own listening socket on the same address with
  `SO_REUSEPORT`, so the kernel spreads connections over them (no socket
  shared across processes: asyncio then also sets TCP_NODELAY on every
  connection, which a socket inherited from `uvicorn --workers` misses);
- every child runs the key-value watch triggers, and they take turns
  through leases in the watched store, as processes on several machines
  do (`wasikv.triggers.watch.lease`): one delivers each trigger at a time;
- `memory:` stores are refused: each process would have its own;
- a child whose supervisor is gone (killed outright) stops itself;
- the supervisor restarts a child that dies (after a short, growing pause,
  so a child that cannot start does not spin), and on SIGINT or SIGTERM
  passes the signal on and waits for every child, killing any still there
  after `stop_wait` seconds (`STOP_WAIT` by default; `up` makes it its drain
  timeout plus `STOP_MARGIN`); a second signal is passed on too, and every
  process ends at once (exit status 128 + the signal);
- with `--metrics` or `--health`, the supervisor serves `/livez` and
  `/readyz` for the whole (see `children_health`).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

from ..errors import ConfigError
from .children_health import HEALTH_DIR_ENV, ChildrenHealth
from .health_http import health_app, metrics_app, start

log = logging.getLogger("wasikv")

#: The environment variables that tell a child which one it is.
INDEX_ENV = "WASIKV_PROCESS_INDEX"
COUNT_ENV = "WASIKV_PROCESS_COUNT"
SUPERVISOR_ENV = "WASIKV_SUPERVISOR_PID"
#: Seconds the supervisor waits for children after passing a signal on (by default).
STOP_WAIT = 12.0
#: Seconds past a child's drain timeout it may take to stop (closing the stores, the watchers' last save).
STOP_MARGIN = 8.0
# Seconds the supervisor waits for children after a second signal.
_FORCED_WAIT = 1.0
# Pauses before restarting a child that died: doubling up to the most.
_RESTART_FIRST_WAIT = 0.5
_RESTART_MAX_WAIT = 30.0
# A child that ran this long before dying restarts after the first pause again.
_HEALTHY_AFTER = 60.0


def process_index() -> int | None:
    """Which child of `up --processes` this process is (0 first), None when not one."""
    value = os.environ.get(INDEX_ENV)
    return None if value is None else int(value)


def stop_when_orphaned(interval: float = 0.5) -> None:
    """SIGTERM this process (a graceful stop) once its parent, the supervisor, is gone.

    A supervisor killed outright (SIGKILL, the OOM killer) cannot stop its
    children; without this they would go on serving, holding the port.
    """
    # The supervisor's pid from the environment, not getppid(): by the time
    # this runs the supervisor may already be gone.
    parent = int(os.environ.get(SUPERVISOR_ENV, os.getppid()))

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        log.error("the supervisor (pid %d) is gone; stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="wasikv-orphan-watch", daemon=True).start()


def refuse_memory_stores(stores: Mapping[str, str]) -> None:
    """`ConfigError` if a label is a `memory:` store: each process would have its own."""
    for label, url in sorted(stores.items()):
        if url.lower().startswith("memory:"):
            raise ConfigError(
                f"store {label!r} is {url!r}: with --processes every process would hold its own copy; "
                "use a sqlite, redis or postgres store, or run one process"
            )


def listening_socket(host: str, port: int, *, shared: bool = True) -> socket.socket:
    """A listening socket on (host, port); `shared`: other processes may bind it as well (SO_REUSEPORT).

    Without `shared`, binding fails while anything listens there, shared or
    not: the check that the port is free.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto given explicitly: asyncio sets TCP_NODELAY only on sockets whose
    # proto is IPPROTO_TCP, and accepted sockets inherit it; with proto 0
    # every response waited ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


@dataclass
class _Child:
    index: int
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    pause: float = _RESTART_FIRST_WAIT


class Supervisor:
    """Runs `command` as `count` children, restarting any that dies, until told to stop."""

    def __init__(
        self,
        command: Sequence[str],
        count: int,
        env: Mapping[str, str] | None = None,
        stop_wait: float = STOP_WAIT,
    ) -> None:
        if count < 2:
            raise ValueError("a supervisor runs at least two processes")
        self.stop_wait = stop_wait
        self.command = list(command)
        self.count = count
        self.env = dict(os.environ if env is None else env)
        self._children: dict[int, _Child] = {}
        self._stopping = threading.Event()
        self.restarts = 0
        #: Called with the pid of every child that has exited.
        self.on_exit: Callable[[int], None] | None = None

    def _spawn(self, index: int, pause: float = _RESTART_FIRST_WAIT) -> None:
        env = {
            **self.env,
            INDEX_ENV: str(index),
            COUNT_ENV: str(self.count),
            SUPERVISOR_ENV: str(os.getpid()),
        }
        # A process group of its own: a Ctrl-C in the terminal reaches only
        # the supervisor, which passes it on once; the children would
        # otherwise get it twice and take it for the second, forcing signal.
        process = subprocess.Popen(self.command, env=env, process_group=0)
        self._children[index] = _Child(index, process, pause=pause)

    def run(self) -> int:
        """Start the children and supervise them; returns when they have stopped (0: asked to)."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for index in range(self.count):
                self._spawn(index)
            while not self._stopping.is_set():
                self._reap()
                self._stopping.wait(0.2)
            return self._stop_children()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        """Ask the supervisor to stop its children and return."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        """Whether the supervisor was told to stop."""
        return self._stopping.is_set()

    def running(self) -> dict[int, int | None]:
        """Each started child's pid by index; None for one not running (it died and waits to be restarted)."""
        return {
            index: child.process.pid if child.process.poll() is None else None
            for index, child in dict(self._children).items()
        }

    def _on_signal(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if self._stopping.is_set():
            # A second signal: the children are told twice (each then ends at
            # once), and so does the supervisor, after a moment for them.
            log.warning("stopping %d processes at once (second %s)", self.count, name)
            self._signal_children(signal.SIGTERM)
            deadline = time.monotonic() + _FORCED_WAIT
            for child in self._children.values():
                try:
                    child.process.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.process.kill()
            os._exit(128 + signum)
        log.warning("stopping %d processes (%s)", self.count, name)
        self._stopping.set()

    def _signal_children(self, sig: int) -> None:
        for child in self._children.values():
            if child.process.poll() is None:
                child.process.send_signal(sig)

    def _reap(self) -> None:
        for index, child in list(self._children.items()):
            code = child.process.poll()
            if code is None or self._stopping.is_set():
                continue
            if self.on_exit is not None:
                self.on_exit(child.process.pid)
            ran = time.monotonic() - child.started
            pause = _RESTART_FIRST_WAIT if ran >= _HEALTHY_AFTER else child.pause
            log.error(
                "process %d (pid %d) exited with status %d after %.1f s; restarting it in %.1f s",
                index,
                child.process.pid,
                code,
                ran,
                pause,
            )
            if self._stopping.wait(pause):
                return
            self.restarts += 1
            self._spawn(index, min(_RESTART_MAX_WAIT, pause * 2))

    def _stop_children(self) -> int:
        self._signal_children(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_wait
        failed = 0
        for child in self._children.values():
            try:
                code = child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("process %d did not stop within %g s; killing it", child.index, self.stop_wait)
                child.process.kill()
                code = child.process.wait()
            failed += code not in (0, -signal.SIGTERM)
        return 1 if failed else 0


def child_command(argv: Sequence[str]) -> list[str]:
    """This process's own command line, to run again as a child."""
    return [sys.executable, "-m", "wasikv", *argv]


def supervise(
    argv: Sequence[str],
    count: int,
    metrics_listener: WSGIServer | None = None,
    health_listener: WSGIServer | None = None,
    stop_wait: float = STOP_WAIT,
) -> int:
    """Run `wasikv ARGV` as `count` children until SIGINT/SIGTERM; returns the exit status.

    With `metrics_listener` (bound with `health_http.bind`), the children
    write their metrics to a shared directory (prometheus-client's
    multiprocess mode) and this process serves their sum at `/metrics`
    there. With it or `health_listener`, this process serves `/livez` and
    `/readyz` for every child there. Children still running `stop_wait`
    seconds after a stop was passed on are killed.
    """
    env = dict(os.environ)
    directory = None
    health_dir = None
    if metrics_listener is not None or health_listener is not None:
        health_dir = tempfile.mkdtemp(prefix="wasikv-health-")
        env[HEALTH_DIR_ENV] = health_dir
    if metrics_listener is not None:
        directory = tempfile.mkdtemp(prefix="wasikv-metrics-")
        env["PROMETHEUS_MULTIPROC_DIR"] = directory
    supervisor = Supervisor(child_command(argv), count, env, stop_wait=stop_wait)
    try:
        if health_dir is not None:
            health = ChildrenHealth(health_dir, count, supervisor.running, lambda: supervisor.stopping)
            if metrics_listener is not None and directory is not None:
                metrics = metrics_app(_children_registry(directory))
                start(metrics_listener, health_app(health, metrics))
            if health_listener is not None:
                start(health_listener, health_app(health))
        if directory is not None:
            supervisor.on_exit = functools.partial(_forget_process, directory)
        return supervisor.run()
    finally:
        for made in (directory, health_dir):
            if made is not None:
                shutil.rmtree(made, ignore_errors=True)


def _children_registry(directory: str) -> object:
    """A registry summing the samples every child writes to `directory`."""
    from ..metrics import _prometheus

    prometheus = _prometheus()
    from prometheus_client import multiprocess

    registry = prometheus.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


def _forget_process(directory: str, pid: int) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, path=directory)  # type: ignore[no-untyped-call]


__all__ = [
    "COUNT_ENV",
    "INDEX_ENV",
    "STOP_MARGIN",
    "STOP_WAIT",
    "SUPERVISOR_ENV",
    "Supervisor",
    "child_command",
    "listening_socket",
    "process_index",
    "refuse_memory_stores",
    "stop_when_orphaned",
    "supervise",
]
