"""Redis for tests: the shared server on 127.0.0.1:6379, private servers, and cleanup.

Tests that need Redis call `require_redis()` (or `require_redis_server()` for a
private `redis-server`). Where Redis is missing they skip with the reason,
except when the environment variable CI is "true": there they fail, so a CI
machine without Redis cannot pass by skipping.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, NoReturn

import pytest

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
#: The database the tests use on the shared server; every test also uses a prefix of its own.
TEST_DB = 15


def unavailable(reason: str, *, module: bool = False) -> NoReturn:
    """Skip the test (or with `module`, the whole module) because Redis is missing; fail in CI."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: Redis tests must run in CI)", pytrace=False)
    pytest.skip(reason, allow_module_level=module)


def require_redis_py() -> None:
    """At the top of a test module that imports redis-py: skip it (fail in CI) without redis-py."""
    try:
        import redis  # noqa: F401
    except ImportError:
        unavailable("redis-py is not installed (pip install 'wasikv[redis]')", module=True)


@functools.cache
def _problem() -> str | None:
    try:
        import redis
    except ImportError:
        return "redis-py is not installed (pip install 'wasikv[redis]')"
    client = redis.Redis(REDIS_HOST, REDIS_PORT, db=TEST_DB, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"Redis not reachable at {REDIS_HOST}:{REDIS_PORT}: {exc}"
    finally:
        client.close()
    return None


def require_redis() -> None:
    """Skip (or in CI fail) the calling test unless the shared Redis answers."""
    problem = _problem()
    if problem is not None:
        unavailable(problem)


def unique_prefix() -> str:
    """A key prefix no other test (or test run) uses."""
    return f"wasikv-test:{uuid.uuid4().hex}:"


def raw_client(port: int = REDIS_PORT, db: int = TEST_DB, **options: Any) -> Any:
    """A plain redis-py client (bytes replies) for looking behind the store's back."""
    import redis

    return redis.Redis(REDIS_HOST, port, db=db, socket_connect_timeout=5, socket_timeout=5, **options)


def delete_prefix(prefix: str, port: int = REDIS_PORT, db: int = TEST_DB) -> int:
    """Delete every key under `prefix` (a unique_prefix: no glob characters); return how many."""
    client = raw_client(port, db)
    try:
        names = list(client.scan_iter(match=prefix.encode() + b"*", count=1000))
        for start in range(0, len(names), 1000):
            client.delete(*names[start : start + 1000])
        return len(names)
    finally:
        client.close()


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((REDIS_HOST, 0))
        return int(probe.getsockname()[1])


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made with the openssl command (skip without it)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed (needed to make a test certificate)")
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert),
         "-subj", f"/CN={REDIS_HOST}", "-addext", f"subjectAltName=IP:{REDIS_HOST}"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def require_redis_server() -> str:
    """The path of the redis-server binary; skip (or in CI fail) without one."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not installed (needed to start a private Redis)")
    try:
        import redis  # noqa: F401
    except ImportError:
        unavailable("redis-py is not installed (pip install 'wasikv[redis]')")
    return binary


class RedisServer:
    """A private `redis-server` on a free loopback port that a test can stop, restart and freeze."""

    def __init__(
        self, directory: Path, *extra: str, port: int | None = None, tls: tuple[Path, Path] | None = None
    ) -> None:
        """`extra` are more redis-server options; `tls` (certificate, key) serves TLS only."""
        self.binary = require_redis_server()
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port if port is not None else free_port()
        self.extra = extra
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / f"redis-{self.port}.log"

    @property
    def address(self) -> str:
        return f"{REDIS_HOST}:{self.port}"

    def start(self) -> None:
        """Start the server (on the same port as before) and wait until it answers PING."""
        assert self.process is None, "already running"
        if self.tls is None:
            listen = ["--port", str(self.port)]
        else:
            cert, key = self.tls
            listen = [
                "--port",
                "0",
                "--tls-port",
                str(self.port),
                "--tls-cert-file",
                str(cert),
                "--tls-key-file",
                str(key),
                "--tls-ca-cert-file",
                str(cert),
                "--tls-auth-clients",
                "no",
            ]
        command = [
            self.binary,
            *listen,
            "--bind", REDIS_HOST,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self.directory),
            "--logfile", str(self.log),
            *self.extra,
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while True:
            if self.process.poll() is not None:
                log = self.log.read_text(errors="replace") if self.log.exists() else ""
                self.process = None
                raise RuntimeError(f"redis-server on port {self.port} exited at start:\n{log[-2000:]}")
            if self._answers():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not answer within 15s")
            time.sleep(0.02)

    def _answers(self) -> bool:
        try:
            with socket.create_connection((REDIS_HOST, self.port), timeout=1) as plain:
                conn = plain
                if self.tls is not None:
                    context = ssl.create_default_context(cafile=str(self.tls[0]))
                    conn = context.wrap_socket(plain, server_hostname=REDIS_HOST)
                conn.sendall(b"PING\r\n")
                reply = conn.recv(64)
        except OSError:
            return False
        # "-NOAUTH" also means the server is up (a password-protected one).
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server (SIGTERM: a clean shutdown; SIGKILL: a crash) and wait for it."""
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)  # a frozen server cannot act on SIGTERM
            process.send_signal(sig)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: the port still accepts connections, but nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
