"""`HttpRoutes`: an application's `[[trigger.http]]` tables, ready for the ASGI app to route to."""

from __future__ import annotations

from collections.abc import Mapping

from wasmtime.component import Component

from ..app.loader import LoadedApp
from ..app.routes import Router
from ..capability import InstanceSpec
from ..errors import ComponentError
from ..host import Host
from ..instance_reuse import InstanceReuse
from ._instance import instance_spec
from .http_component import HTTP_EXPORTS, HttpComponent
from .runtime import Swap, TriggerRuntime
from .wasi_http_component import WASI_HTTP_EXPORT, WasiHttpComponent

__all__ = ["HTTP_RUNTIME", "AnyHttpComponent", "HttpRoutes", "http_component"]

#: A component serving HTTP: wasikv's record worlds, or the standard `wasi:http/incoming-handler`.
AnyHttpComponent = HttpComponent | WasiHttpComponent


def http_component(
    host: Host,
    component: Component,
    *,
    name: str = "app",
    spec: InstanceSpec | None = None,
    reuse: InstanceReuse | None = None,
) -> AnyHttpComponent:
    """The HTTP trigger for `component`, chosen by what it exports (the standard handler first).

    With `reuse`, its instances serve several requests each (see
    `wasikv.instance_reuse`); call its `close` when done with it.
    """
    exports = host.exports(component)
    if any(interface in exports for interface in WASI_HTTP_EXPORT.interfaces):
        return WasiHttpComponent(host, component, name=name, spec=spec, reuse=reuse)
    return HttpComponent(host, component, name=name, spec=spec, reuse=reuse)


class HttpRoutes:
    """Every `[[trigger.http]]` of an application: its router and one HTTP component per routed component.

    `wasikv.server.asgi.WasikvApp` routes each request with them; stopping
    them frees the instances components kept for reuse.
    """

    def __init__(self, router: Router, components: Mapping[str, AnyHttpComponent]) -> None:
        self.router = router
        self.components = dict(components)

    @classmethod
    def from_app(cls, loaded: LoadedApp, host: Host, *, timeout: float | None = None) -> HttpRoutes:
        """Routes for a `wasikv.app.loader.LoadedApp`'s HTTP triggers, on `host`.

        `timeout` is each request's deadline (None: no limit). Raises
        `ComponentError`, naming the component, for one that cannot serve HTTP.
        """
        manifest = loaded.manifest
        router = Router(manifest.http_triggers)
        components: dict[str, AnyHttpComponent] = {}
        for trigger in manifest.http_triggers:
            name = trigger.component
            if name not in components:
                try:
                    components[name] = http_component(
                        host,
                        host.load(manifest.components[name].source),
                        name=name,
                        spec=instance_spec(loaded, name, timeout),
                        reuse=manifest.components[name].reuse,
                    )
                except ComponentError as exc:
                    raise ComponentError(f"component {name!r}: {exc}") from None
        return cls(router, components)

    def swap(self, name: str, component: Component) -> Swap | None:
        """Serve `name`'s routes with `component` once the returned swap is called (see `TriggerService`).

        The new version gets the old one's instance spec (environment,
        variables, grants, deadline) and reuse; it may export the other HTTP
        interface. The old version's kept instances are freed once swapped.
        """
        old = self.components.get(name)
        if old is None:
            return None
        # Its errors name `name`.
        new = http_component(old.host, component, name=name, spec=old.spec, reuse=old.reuse)

        def put_in_place() -> None:
            # One dict assignment: a request looks its component up once, so it
            # runs wholly on the old version or wholly on the new one.
            self.components[name] = new
            old.close()

        return put_in_place

    def start(self) -> None:
        """Nothing to start: requests arrive through the ASGI app."""

    def stop(self) -> None:
        """Free every component's kept instances (those in use once their requests end)."""
        for component in self.components.values():
            component.close()


HTTP_RUNTIME = TriggerRuntime(exports=(WASI_HTTP_EXPORT, *HTTP_EXPORTS), prepare=HttpRoutes.from_app)
