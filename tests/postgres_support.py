"""PostgreSQL for tests: the shared server on 127.0.0.1:5432, private servers, and cleanup.

Tests that need PostgreSQL call `require_postgres()` (or build a private
`PostgresServer`). Where PostgreSQL is missing they skip with the reason,
except when the environment variable CI is "true": there they fail, so a CI
machine without PostgreSQL cannot pass by skipping.

Every test works in a schema of its own in the database ``test``
(`unique_schema`, dropped afterwards with `drop_schema`), and never touches
any other schema.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any, NoReturn

import pytest

from .redis_support import free_port

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
#: The database the tests use on the shared server; every test also uses a schema of its own.
TEST_DB = "test"
#: Where Debian installs the server binaries (initdb, pg_ctl), newest first.
_BINARY_DIRS = ("/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin")


def unavailable(reason: str, *, module: bool = False) -> NoReturn:
    """Skip the test (or with `module`, the whole module) because PostgreSQL is missing; fail in CI."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run in CI)", pytrace=False)
    pytest.skip(reason, allow_module_level=module)


def require_psycopg() -> None:
    """At the top of a test module that imports psycopg: skip it (fail in CI) without psycopg."""
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (pip install 'wasikv[postgres]')", module=True)


@functools.cache
def _problem() -> str | None:
    try:
        import psycopg
        import psycopg_pool  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'wasikv[postgres]')"
    try:
        with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=TEST_DB, connect_timeout=3):
            pass
    except psycopg.Error as exc:
        return f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}/{TEST_DB} as {PG_USER}: {exc}"
    return None


def require_postgres() -> None:
    """Skip (or in CI fail) the calling test unless the shared PostgreSQL answers."""
    problem = _problem()
    if problem is not None:
        unavailable(problem)


def unique_schema() -> str:
    """A schema name no other test (or test run) uses."""
    return f"wasikv_test_{uuid.uuid4().hex[:20]}"


def postgres_url(schema: str, *, port: int = PG_PORT, dbname: str = TEST_DB, **options: object) -> str:
    """A store URL for the test server (or a private one on `port`) in `schema`."""
    query = "&".join(f"{name}={value}" for name, value in {"schema": schema, **options}.items())
    return f"postgres://{PG_USER}@{PG_HOST}:{port}/{dbname}?{query}"


def raw_connection(port: int = PG_PORT, dbname: str = TEST_DB) -> Any:
    """A plain autocommit psycopg connection, for looking behind the store's back."""
    import psycopg

    return psycopg.connect(
        host=PG_HOST, port=port, user=PG_USER, dbname=dbname, connect_timeout=5, autocommit=True
    )


def drop_schema(schema: str, port: int = PG_PORT, dbname: str = TEST_DB) -> None:
    """Drop a test schema (a `unique_schema`) and everything in it."""
    assert schema.startswith("wasikv_test_"), schema
    with raw_connection(port, dbname) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def server_binaries() -> Path:
    """The directory with initdb and pg_ctl; skip (or in CI fail) without one."""
    for candidate in _BINARY_DIRS:
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found is not None and shutil.which("pg_ctl") is not None:
        return Path(found).parent
    unavailable("initdb and pg_ctl are not installed (needed to start a private PostgreSQL)")


class PostgresServer:
    """A private PostgreSQL on a free loopback port that a test can stop, crash and restart.

    PostgreSQL refuses to run as root: under root the server runs as the
    ``postgres`` system user, with its data in a directory of its own under
    the system temporary directory (pytest's are private to root).
    """

    def __init__(self, directory: Path, port: int | None = None) -> None:
        require_psycopg()
        self.binaries = server_binaries()
        self.port = port if port is not None else free_port()
        self.user: str | None = None
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                unavailable("running as root, and there is no 'postgres' user to run a private PostgreSQL")
            self.user = "postgres"
            self.root = Path(tempfile.mkdtemp(prefix="wasikv-pg-"))
            os.chown(self.root, account.pw_uid, account.pw_gid)
        else:
            directory.mkdir(parents=True, exist_ok=True)
            self.root = Path(tempfile.mkdtemp(prefix="pg-", dir=directory))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.running = False
        self._run("initdb", "-D", self.data, "-U", PG_USER, "--auth=trust", "-E", "UTF8", "--no-sync")

    @property
    def address(self) -> str:
        return f"{PG_HOST}:{self.port}"

    def url(self, schema: str = "wasikv", **options: object) -> str:
        """A store URL for this server's database ``postgres``."""
        return postgres_url(schema, port=self.port, dbname="postgres", **options)

    def start(self) -> None:
        """Start the server (on the same port as before) and wait until it takes connections."""
        assert not self.running, "already running"
        settings = f"-p {self.port} -k {self.root} -c listen_addresses={PG_HOST}"
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "-o", settings, "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (a clean shutdown) or ``immediate`` (a crash; WAL recovery at start)."""
        if not self.running:
            return
        self.running = False
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        """Stop the server and delete its data."""
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, program: str, *args: object) -> None:
        command = [str(self.binaries / program), *(str(arg) for arg in args)]
        done = subprocess.run(
            command, user=self.user, cwd=self.root, capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}\n{log}"
            )

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()
