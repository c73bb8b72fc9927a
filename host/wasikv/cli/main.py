"""The `wasikv` command line: run components and inspect stores."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..build.guest_build import COMMAND_WORLD, componentize
from ..build.run import NOTE
from ..errors import (
    ConfigError,
    GuestInterrupted,
    GuestTimeout,
    GuestTrap,
    KeyValueError,
    WasikvError,
)
from ..limits import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_KEEP_ALIVE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_REQUEST_TIMEOUT,
    Limits,
)
from ..runtime.guest_traps import GUEST_LOGGER, UNPRINTED
from ..stores.registry import DEFAULT_STORE_URL
from .exit_status import EXIT_INTERRUPTED, EXIT_TIMEOUT
from .progress import compile_progress, progress_console, step

if TYPE_CHECKING:
    from rich.console import Console

    from ..app.loader import LoadedApp
    from ..host import Host

_max_memory_option = click.option(
    "--max-memory",
    type=click.IntRange(min=1),
    default=Limits().max_memory_bytes >> 20,
    show_default=True,
    metavar="MIB",
    help="The most linear memory each guest instance may use; past it, allocations fail.",
)


_quiet_option = click.option(
    "-q", "--quiet", is_flag=True, help="Show no progress (spinners, elapsed times); errors still print."
)


def _pair(value: str, option: str) -> tuple[str, str]:
    name, sep, rest = value.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"expected NAME=VALUE, got {value!r}", param_hint=option)
    return name, rest


@contextmanager
def _reported() -> Iterator[None]:
    """Turn wasikv's errors into a one-line message and exit status 1."""
    try:
        yield
    except (WasikvError, KeyValueError) as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def _ctrl_c_exits() -> Iterator[None]:
    """A Ctrl-C the block does not handle itself exits 130 quietly (wherever it lands in start-up).

    click's standalone mode turns a KeyboardInterrupt into "Aborted!" and
    exit status 1; shells and scripts expect 130 for Ctrl-C.
    """
    try:
        yield
    except KeyboardInterrupt:
        click.echo(err=True)  # ends the terminal's "^C" line, as click does
        raise click.exceptions.Exit(EXIT_INTERRUPTED) from None


class _LazyGroup(click.Group):
    """A group whose subcommands in `lazy` ({name: "module:attribute"}) are imported when used.

    Each command imports what it needs (wasmtime, the host, the backends)
    only when it runs, so `wasikv kv get` does not pay for `wasikv up`.
    """

    def __init__(self, *args: Any, lazy: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        with _ctrl_c_exits():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with _ctrl_c_exits():
            return super().invoke(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            module, _, attribute = self._lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module, __package__), attribute)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=_LazyGroup,
    lazy={"cache": ".cache:cache", "kv": ".kv:kv", "new": ".new:new"},
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="wasikv")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Log host activity to stderr; show a failed guest's panic text and wasm backtrace.",
)
def main(verbose: bool) -> None:
    """wasikv: run wasi:keyvalue WebAssembly components and manage their stores."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="wasikv: %(message)s")
    if verbose:
        # What keeps componentize-py's panic text in a guest's stderr (see wasikv.runtime.guest_traps).
        logging.getLogger(GUEST_LOGGER).setLevel(logging.DEBUG)


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option(
    "--store",
    "stores",
    multiple=True,
    metavar="LABEL=URL",
    help=f"Define a store label (repeatable). Without any, `default` is {DEFAULT_STORE_URL}.",
)
@click.option(
    "--key-value",
    "key_values",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set KEY to VALUE in the `default` store before running (repeatable).",
)
@click.option(
    "--env",
    "env",
    multiple=True,
    metavar="NAME[=VALUE]",
    help="Give the guest an environment variable; NAME alone passes this process's value.",
)
@click.option(
    "--variable",
    "variable_flags",
    multiple=True,
    metavar="NAME=VALUE",
    help="Give the guest a variable, read through wasi:config/store (`wasikv_sdk.variables`; repeatable).",
)
@click.option(
    "--grant",
    "grants",
    multiple=True,
    metavar="LABEL",
    help="Only let the component open these labels (repeatable; default: every defined label).",
)
@click.option(
    "--allow-outbound",
    "allow_outbound",
    multiple=True,
    metavar="ENTRY",
    help=(
        "Let the guest send HTTP requests where ENTRY allows, in Spin's allowed_outbound_hosts "
        "syntax: https://api.example.com, http://127.0.0.1:8000..9000, *://*.example.com:* "
        "(repeatable; default: every request is denied)."
    ),
)
@click.option(
    "--allow-outbound-http",
    "outbound_http",
    is_flag=True,
    help="Let the guest send HTTP requests to any host (the same as --allow-outbound '*://*:*').",
)
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Compiled-component cache directory.")
@click.option("--no-cache", is_flag=True, help="Compile without reading or writing the cache.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Stop the guest after this long (exit 124). Default: no limit.",
)
@_max_memory_option
@_quiet_option
@click.argument("app", type=click.Path(dir_okay=False))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(
    stores: tuple[str, ...],
    key_values: tuple[str, ...],
    env: tuple[str, ...],
    variable_flags: tuple[str, ...],
    grants: tuple[str, ...],
    allow_outbound: tuple[str, ...],
    outbound_http: bool,
    cache_dir: str | None,
    no_cache: bool,
    timeout: float | None,
    max_memory: int,
    quiet: bool,
    app: str,
    args: tuple[str, ...],
) -> None:
    """Run the command component APP with ARGS; exit with its exit code.

    The guest's argv is [APP, *ARGS], as with `wasmtime run`. It gets no
    filesystem, no network (but outbound HTTP requests where --allow-outbound
    allows, or to any host with --allow-outbound-http), only the environment
    given with --env and only the variables given with --variable. A guest stopped by --timeout exits
    124; Ctrl-C stops it and exits 130.
    """
    from ..allowed_hosts import AllowedHosts
    from ..app.variable_sources import parse_variable_flag
    from ..host import Host
    from ..runtime.deadlines import BLOCKED

    with _reported():
        variables = dict(parse_variable_flag(flag) for flag in variable_flags)
        outbound = [*allow_outbound, *(["*://*:*"] if outbound_http else [])]
        try:
            allowed_outbound_hosts = AllowedHosts.parse(outbound)
        except ConfigError as exc:
            raise ConfigError(f"--allow-outbound: {exc}") from None

    labels = dict(_pair(s, "--store") for s in stores) or {"default": DEFAULT_STORE_URL}
    environment = {}
    for item in env:
        name, sep, value = item.partition("=")
        environment[name] = value if sep else os.environ.get(name, "")
    seeds = [_pair(kv, "--key-value") for kv in key_values]
    limits = Limits(max_memory_bytes=max_memory << 20)
    on_compile = compile_progress(progress_console(quiet))
    verbose = bool(click.get_current_context().find_root().params.get("verbose"))
    with (
        _reported(),
        Host(
            labels, limits=limits, cache_dir=cache_dir, compile_cache=not no_cache, on_compile=on_compile
        ) as host,
    ):
        if seeds:
            bucket = host.bucket("default")
            for key, value in seeds:
                bucket.set(key, value.encode("utf-8"))
        with _ctrl_c_interrupts(host) as interrupted:
            try:
                status = host.run(
                    app,
                    args,
                    env=environment,
                    variables=variables,
                    grants=grants or None,
                    program_name=app,
                    timeout=timeout,
                    allowed_outbound_hosts=allowed_outbound_hosts,
                )
                if status.returned_error:
                    click.echo(f"Error: {app}: {RETURNED_ERROR}", err=True)
                code = int(status)
            except GuestInterrupted:
                if not interrupted.is_set():
                    raise
                code = _interrupted(app)
            except GuestTimeout as stopped:
                # A guest blocked in a host call is given up on a second after the
                # deadline, and this process then exits without waiting for it.
                why = f"; {BLOCKED}" if stopped.blocked else ""
                click.echo(f"Error: {app}: stopped after the --timeout of {timeout:g} s{why}", err=True)
                code = EXIT_TIMEOUT
            except GuestTrap as trap:
                click.echo(f"Error: {_trap_message(trap, verbose, max_memory)}", err=True)
                code = 1
            except KeyboardInterrupt:
                code = _interrupted(app)
    sys.exit(code)


@contextmanager
def _ctrl_c_interrupts(host: Host) -> Iterator[threading.Event]:
    """While the block runs, Ctrl-C interrupts `host`'s guests instead of raising.

    A KeyboardInterrupt is raised wherever Python happens to be, and one
    that lands in a finalizer or a ctypes callback (while a component loads
    or starts, say) is printed and dropped: the guest then looped on,
    unstoppable. The handler only records the signal and interrupts the
    host, which stops the guest at its next epoch check.
    """
    interrupted = threading.Event()

    def on_sigint(_signum: int, _frame: object) -> None:
        interrupted.set()
        host.interrupt()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupted(app: str) -> int:
    click.echo(f"Error: {app}: interrupted", err=True)
    return EXIT_INTERRUPTED


def _trap_message(trap: GuestTrap, verbose: bool, max_memory: int) -> str:
    """One line for a trap: the guest's uncaught exception if it raised one; wasmtime's all with -v."""
    if verbose and trap.detail:
        return f"component trapped: {trap.detail.rstrip()}"
    if str(trap) == UNPRINTED:
        return f"{trap} (it may use {max_memory} MiB: --max-memory)"
    return str(trap)


#: What `run` says of a guest whose `run` returned its error result (componentize-py prints nothing).
RETURNED_ERROR = (
    "the guest's run returned an error (in Python: an uncaught Err, such as a raw binding raises;"
    " componentize-py prints no traceback for it)"
)


@main.command("inspect")
@click.argument("app", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Compiled-component cache directory.")
def inspect_cmd(app: str, as_json: bool, cache_dir: str | None) -> None:
    """Show what APP imports and exports, what wasikv provides for it and how it can run.

    For each import: whether wasikv provides it (and in which shape of
    wasi:keyvalue) or wasmtime's WASI 0.2 does, or why nobody does. For each
    of wasikv's worlds (command, http-trigger, spin-http, wasi:http/proxy, watch-trigger): whether the
    component fits it. Exits 1 if wasikv cannot run the component at all.
    """
    import json

    from ..host import Host
    from .describe import inspect_component

    with _reported(), Host({}, cache_dir=cache_dir, on_compile=compile_progress(progress_console())) as host:
        report = inspect_component(host, app)
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else report.render())
    sys.exit(0 if report.runnable else 1)


@main.command("componentize")
@click.argument("app_dir", type=click.Path(file_okay=False, exists=True))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .wasm to write.")
@click.option("-m", "--module", default="app", show_default=True, help="The app's module name in APP_DIR.")
@click.option("-w", "--world", default=COMMAND_WORLD, show_default=True, help="The WIT world to target.")
@click.option("-p", "--python-path", "paths", multiple=True, help="Extra directories of Python code.")
@_quiet_option
def componentize_cmd(
    app_dir: str, output: str, module: str, world: str, paths: tuple[str, ...], quiet: bool
) -> None:
    """Build the Python guest APP_DIR/<module>.py into a component with componentize-py.

    Equivalent to `componentize-py -w WORLD componentize -p <SDK dir> -p APP_DIR
    MODULE -o OUTPUT`, with the SDK found wherever wasikv is installed. The
    pure-Python packages of APP_DIR/requirements.txt are installed for the
    guest (in APP_DIR/.wasikv/packages) and put on the path too.
    """
    with _reported(), step(progress_console(quiet), f"componentize {app_dir} -> {output}"):
        componentize(app_dir, output, module=module, world=world, python_path=paths, on_note=_note)
    click.echo(f"built {output}")


@main.command("build")
@click.option(
    "-f",
    "--file",
    "manifest",
    default="wasikv.toml",
    show_default=True,
    type=click.Path(),
    help="The application manifest, or the directory it is in.",
)
@click.option(
    "-c",
    "--component",
    "components",
    multiple=True,
    metavar="NAME",
    help="Build only this component (repeatable).",
)
@click.option("--force", is_flag=True, help="Rebuild even the components whose inputs did not change.")
@_quiet_option
def build_cmd(manifest: str, components: tuple[str, ...], force: bool, quiet: bool) -> None:
    """Run the build command of each component that has one, skipping those already up to date.

    A component is up to date when its source exists and neither its build
    command nor the files its `watch` globs match changed since its last
    successful build (state in .wasikv/build-state.json next to the manifest).
    Commands run through the shell in their workdir, with wasikv's bin
    directory first on PATH; the first failure shows its output and exits 1.
    """
    from ..app.manifest import load_manifest
    from ..build import build_app

    with _reported():
        progress = progress_console(quiet)
        build_app(
            load_manifest(_find_manifest(manifest)),
            components=components or None,
            force=force,
            console=_build_console(progress),
            progress=progress,
            quiet=quiet,
        )


@main.command("up")
@click.option("-f", "--file", "manifest", default="wasikv.toml", show_default=True, help="The app manifest.")
@click.option("--listen", default="127.0.0.1:3000", show_default=True, metavar="HOST:PORT")
@click.option(
    "--runtime-config-file",
    type=click.Path(dir_okay=False),
    help="Store definitions (default: runtime-config.toml next to the manifest, if present).",
)
@click.option("--key-value", "key_values", multiple=True, metavar="KEY=VALUE", help="Seed the default store.")
@click.option(
    "--variable",
    "variable_flags",
    multiple=True,
    metavar="NAME=VALUE",
    help="Give an application variable its value (repeatable; before WASIKV_VARIABLE_<NAME>, "
    "SPIN_VARIABLE_<NAME>, the dotenv file and the manifest's default).",
)
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False),
    help="Dotenv file of WASIKV_VARIABLE_<NAME>=... lines (default: .env next to the manifest, if any).",
)
@click.option("--build", "build_first", is_flag=True, help="Run `wasikv build` first.")
@click.option(
    "--watch",
    is_flag=True,
    help="Build first, then rebuild each component whose build.watch files (or, without a build "
    "section, its source) change, and swap it in while serving (one process only).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Request threads (default: one per CPU, at least 2).",
)
@click.option(
    "--no-instance-pool", is_flag=True, help="Use wasmtime's default allocator, not the pooling one."
)
@click.option(
    "--request-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_REQUEST_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="Answer 504 and stop the guest when a request takes longer (also the limit per watcher call).",
)
@click.option(
    "--queue-limit",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Requests that may wait for a worker; more get 503 (default: 64, or 4 x workers if more).",
)
@click.option(
    "--max-blocked",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Workers replaced at once when their guest is blocked in a host call past its deadline"
    " (default: 8 x workers).",
)
@_max_memory_option
@click.option(
    "--max-output",
    type=click.IntRange(min=1),
    default=Limits().max_output_bytes >> 10,
    show_default=True,
    metavar="KIB",
    help="Stdout, and stderr, logged from each request or watcher batch; the rest is dropped and counted.",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_HEADER_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="Close a connection that has not sent a request's headers in this time.",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_BODY_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="Answer 408 when a request's whole body has not arrived in this time.",
)
@click.option(
    "--keep-alive-timeout",
    type=click.IntRange(min=1),
    default=int(DEFAULT_KEEP_ALIVE_TIMEOUT),
    show_default=True,
    metavar="SECONDS",
    help="Close an idle keep-alive connection after this time.",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    metavar="N",
    help="Server processes sharing the port (they take turns on the watch triggers; memory: stores "
    "are refused).",
)
@click.option(
    "--watch-lease",
    type=float,
    default=None,
    metavar="SECONDS",
    help="How long a process holds a watch trigger without renewing; another takes over that long "
    "after it dies (default 10; a trigger's lease_seconds wins).",
)
@click.option(
    "--metrics",
    "metrics_listen",
    metavar="HOST:PORT",
    help="Serve Prometheus metrics at http://HOST:PORT/metrics (needs the metrics extra), "
    "and the probes /livez and /readyz there.",
)
@click.option(
    "--health",
    "health_listen",
    metavar="HOST:PORT",
    help="Serve the liveness and readiness probes at http://HOST:PORT/livez and /readyz "
    "(never on the app's port).",
)
@click.option(
    "--drain-timeout",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="On SIGINT/SIGTERM, how long requests and watcher batches in progress may finish "
    "(default: the request timeout).",
)
@click.option(
    "--drain-delay",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="On SIGINT/SIGTERM, keep accepting connections this long after /readyz turned 503 "
    "(for load balancers to stop sending first), then drain.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_CONNECTIONS,
    show_default=True,
    metavar="N",
    help="Connections at once; requests beyond it are answered 503.",
)
@click.option(
    "--max-connections-per-client",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Connections one client (IP address; IPv6: its /64) may hold at once; more are closed "
    "unanswered (default: a quarter of --max-connections, at least 8; none if N >= --max-connections). "
    "Behind a reverse proxy every client is the proxy: set it to --max-connections, and limit "
    "clients in the proxy.",
)
@_quiet_option
def up(
    manifest: str,
    listen: str,
    runtime_config_file: str | None,
    key_values: tuple[str, ...],
    variable_flags: tuple[str, ...],
    env_file: str | None,
    build_first: bool,
    watch: bool,
    workers: int | None,
    no_instance_pool: bool,
    request_timeout: float,
    queue_limit: int | None,
    max_blocked: int | None,
    max_memory: int,
    max_output: int,
    header_timeout: float,
    body_timeout: float,
    keep_alive_timeout: int,
    max_connections: int,
    max_connections_per_client: int | None,
    processes: int,
    watch_lease: float | None,
    metrics_listen: str | None,
    health_listen: str | None,
    drain_timeout: float | None,
    drain_delay: float,
    quiet: bool,
) -> None:
    """Serve an app's HTTP triggers (Spin-style `spin up`). Ctrl-C or SIGTERM stops it.

    With --processes N, N server processes share the port (each its own
    socket), they take turns on the key-value watchers through leases in
    the watched store (as several hosts do), `memory:` stores are refused,
    and a process that dies is started again.

    On SIGINT/SIGTERM, /readyz turns 503, the port stops accepting
    (--drain-delay seconds later), and requests and watcher batches in
    progress get --drain-timeout seconds to finish; a second signal ends
    every process at once.

    With --watch, a component whose files change is rebuilt, compiled and
    swapped in while the server runs: requests in progress finish on the
    old version, and a failed build or compile keeps it serving.
    """
    from ..app.loader import load_app
    from ..app.variable_sources import VariableSources, parse_variable_flag
    from ..server.asgi import DEFAULT_POOL, create_app
    from ..server.listeners import bind_listeners
    from ..server.processes import (
        STOP_MARGIN,
        listening_socket,
        process_index,
        refuse_memory_stores,
        stop_when_orphaned,
        supervise,
    )
    from ..server.serve import ServerLimits, announce, parse_listen, serve

    child = process_index()
    if child is not None:
        stop_when_orphaned()
    seeds = [_pair(kv, "--key-value") for kv in key_values] if child is None else []
    # Children of --processes compile from the cache the parent filled, silently.
    progress = progress_console(quiet) if child is None else None
    metrics = None
    with _reported():
        address = parse_listen(listen)
        variables = dict(parse_variable_flag(flag) for flag in variable_flags)
        health_address = None if health_listen is None else parse_listen(health_listen, "--health")
        metrics_address = None if metrics_listen is None else parse_listen(metrics_listen, "--metrics")
        if health_address is not None:
            _own_port("--health", health_address, {"--listen": address, "--metrics": metrics_address})
        if metrics_address is not None:
            _own_port("--metrics", metrics_address, {"--listen": address})
            from ..metrics import Metrics

            metrics = Metrics() if processes == 1 or child is not None else None
        path = _find_manifest(manifest, say=child is None)
        if watch and processes > 1:
            raise ConfigError(
                "--watch swaps rebuilt components into one server process: it cannot be combined "
                f"with --processes {processes} (drop one of them)"
            )
        building = (build_first or watch) and child is None
        # Everything that needs no built component is checked before the
        # seconds of building and compiling: the manifest, the runtime
        # config, the variables, the stores and the ports.
        loaded = load_app(
            path,
            runtime_config_file=runtime_config_file,
            require_sources=not building,
            variables=VariableSources(flags=variables, env_file=env_file),
        )
        if processes > 1 and child is None:
            refuse_memory_stores(loaded.stores)
        _check_stores(loaded)
        listeners = bind_listeners(
            address, metrics_address, health_address, processes=processes, child=child is not None
        )
        watcher = None
        try:
            if watch:
                from ..build.changes import InputWatcher

                # Made before the first build: an edit saved while it runs counts as a change.
                watcher = InputWatcher(loaded.manifest)
            if building:
                from ..build import BuildFailed, build_app

                try:
                    build_app(
                        loaded.manifest, console=_build_console(progress), progress=progress, quiet=quiet
                    )
                except BuildFailed as failed:
                    raise click.ClickException(str(failed)) from None
            app = create_app(
                path,
                runtime_config_file=runtime_config_file,
                key_values=seeds,
                variables=variables,
                env_file=env_file,
                workers=workers,
                instance_pool=None if no_instance_pool else DEFAULT_POOL,
                request_timeout=request_timeout,
                queue_limit=queue_limit,
                max_blocked=max_blocked,
                body_timeout=body_timeout,
                limits=Limits(max_memory_bytes=max_memory << 20, max_output_bytes=max_output << 10),
                metrics=metrics,
                # Every process runs the watchers: leases in the store pick one per trigger.
                singletons=True,
                on_compile=compile_progress(progress),
            )
        except BaseException:
            listeners.close()
            raise
        try:
            if watch_lease is not None:
                app.watchers.set_lease_time(watch_lease)
        except BaseException:
            app.close()
            listeners.close()
            raise
        if processes > 1 and child is None:
            # The supervisor: everything was checked (and compiled) above;
            # the children do the serving.
            try:
                # Still free after the compiles, or this says why (before "Serving").
                listening_socket(*address, shared=False).close()
                # A child takes the watchers' leases, maybe after another child
                # has served writes: they start from here, not from then.
                app.watchers.save_starts()
            except BaseException:
                listeners.close()
                raise
            finally:
                app.close()
            drain = request_timeout if drain_timeout is None else drain_timeout
            announce(app, *address, processes=processes)
            code = supervise(
                sys.argv[1:],
                processes,
                listeners.metrics,
                listeners.health,
                stop_wait=drain_delay + drain + STOP_MARGIN,
            )
            print("Stopped", flush=True)
            sys.exit(code)
        rebuilder = None
        if watcher is not None:
            from ..server.watch_mode import Rebuilder

            rebuilder = Rebuilder(app, watcher)
        serve(
            app,
            listen,
            ServerLimits(header_timeout, keep_alive_timeout, max_connections, max_connections_per_client),
            drain=drain_timeout,
            drain_delay=drain_delay,
            listeners=listeners,
            rebuilder=rebuilder,
        )


def _own_port(option: str, wanted: tuple[str, int], others: dict[str, tuple[str, int] | None]) -> None:
    """`ConfigError` if `option` asks for the address of one of `others` (by option name)."""
    for other, address in others.items():
        if address == wanted:
            raise ConfigError(
                f"{option} {wanted[0]}:{wanted[1]} is also {other}'s address: give it a port of its own"
            )


def _note(text: str) -> None:
    """One `note:` line on stderr (`wasikv build` shows these even from a command that succeeds)."""
    click.echo(f"{NOTE}{text}", err=True)


def _find_manifest(manifest: str, *, say: bool = True) -> Path:
    """The manifest `-f` names; one line on stderr when that is a `spin.toml` found in its place."""
    from ..app.manifest import SPIN_MANIFEST_NAME, find_manifest

    path = find_manifest(manifest)
    if say and path.name == SPIN_MANIFEST_NAME and Path(manifest).name != SPIN_MANIFEST_NAME:
        click.echo(
            f"no wasikv.toml here: reading {path}, Spin's manifest (wasikv reads its v2 layout)",
            err=True,
        )
    return path


def _build_console(progress: Console | None) -> Console:
    """Stdout for the build's lines; never a live table there (progress goes to stderr, or nowhere)."""
    from rich.console import Console

    return Console() if progress is not None else Console(force_terminal=False)


def _check_stores(loaded: LoadedApp) -> None:
    """Every configured store answers now, or a `ConfigError` says which (and where it is configured)."""
    from ..host import Host

    try:
        with Host(loaded.stores, compile_cache=False) as host:
            host.check_stores()
    except ConfigError as exc:
        source = loaded.runtime_config_file
        raise ConfigError(f"{exc} (configured in {source})" if source else str(exc)) from None
