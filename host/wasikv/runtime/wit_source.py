"""WIT source text read into the function signatures a component importing it sees.

wasikv implements some WASI interfaces in Python; the vendored WIT under
`wit/deps/` is the source of truth for their types. `load_wit` parses WIT
files (the subset WASI 0.2 uses: interfaces, `use` across interfaces and
packages, type aliases, records, variants, enums, flags, resources, and
worlds, which are skipped) and gives, per interface, every function as the
`FuncSig` that `linking.imported_functions` reads from a component importing
it, so a component's imports can be compared with it by equality.

What wasmtime's reflection shows is mirrored where it is not plain WIT:
a resource is named by its local name in the importing interface, an alias
of one (`type headers = fields`) by the resource's own name when that is
visible too; records and variants take their local name (display only).
Items gated `@unstable` are left out; `@since` and `@deprecated` are ignored.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import wasikv_sdk

from ._wit_syntax import (
    MAX_DEPTH,
    Def,
    ListNode,
    Node,
    OptionNode,
    RawInterface,
    Ref,
    ResultNode,
    TupleNode,
    UsePath,
    WitError,
    parse,
)
from .wit_types import (
    Borrow,
    EnumOf,
    FlagsOf,
    FuncSig,
    ListOf,
    OptionOf,
    Own,
    Prim,
    RecordOf,
    ResultOf,
    TupleOf,
    VariantOf,
    WitType,
)

#: The vendored packages `wasi_interfaces` reads (directories of the SDK's `wit/deps`).
WASI_PACKAGES = ("cli", "clocks", "filesystem", "http", "io", "random", "sockets")


@dataclass(frozen=True)
class WitInterface:
    """One interface: its functions as a component importing it sees them."""

    #: Package without version, "/", interface: "wasi:io/streams".
    name: str
    #: The package's version ("0.2.0"; "" when it has none).
    version: str
    #: By component-model name: "poll", "[constructor]fields", "[method]fields.get",
    #: "[static]fields.from-list".
    functions: Mapping[str, FuncSig] = field(hash=False)
    #: The resources defined here, in source order.
    resources: tuple[str, ...] = ()
    #: Each `use`d name -> (interface defining it, its name there); a resource
    #: reached through an alias (`type headers = fields`) points at the resource.
    uses: Mapping[str, tuple[str, str]] = field(default_factory=dict, hash=False)

    @property
    def qualified(self) -> str:
        """The import name: "wasi:io/streams@0.2.0"."""
        return f"{self.name}@{self.version}" if self.version else self.name


class _Resolver:
    """Names followed across interfaces and packages."""

    def __init__(self, interfaces: list[RawInterface]) -> None:
        self.packages: dict[str, dict[str, dict[str, RawInterface]]] = {}
        for iface in interfaces:
            name, version = iface.package
            self.packages.setdefault(name, {}).setdefault(version, {})[iface.name] = iface

    def target(self, iface: RawInterface, path: UsePath, pos: int) -> RawInterface:
        """The interface a `use` names, from `iface`."""
        package, name, version = path
        if package is None:
            package, version = iface.package
        versions = self.packages.get(package, {})
        if version is None and len(versions) == 1:
            version = next(iter(versions))
        found = versions.get(version or "", {}).get(name)
        if found is None:
            wanted = f"{package}/{name}" + (f"@{version}" if version else "")
            raise iface.source.error(pos, f"interface {wanted} is not among the WIT loaded")
        return found

    def definition(self, iface: RawInterface, name: str, pos: int) -> tuple[RawInterface, str, Def]:
        """Follow `use` to the interface that defines `name`, and its definition there."""
        first, start, origin = iface, pos, iface
        seen: set[tuple[str, str]] = set()
        while True:
            item = iface.defs.get(name)
            if item is None:
                # Named by the last `use` followed (or the reference itself), in its own file.
                raise origin.source.error(pos, f"`{name}` is not defined in interface {iface.key}")
            if item.kind != "use":
                return iface, name, item
            if (iface.key, name) in seen:
                raise first.source.error(start, f"`use` of `{name}` goes round in a circle")
            if len(seen) >= MAX_DEPTH:
                raise first.source.error(start, f"`use` of `{name}` follows more than {MAX_DEPTH} uses")
            seen.add((iface.key, name))
            assert item.use is not None
            path, name = item.use
            origin, pos, iface = iface, item.pos, self.target(iface, path, item.pos)

    def final(self, iface: RawInterface, name: str, pos: int) -> tuple[RawInterface, str, Def, bool]:
        """As `definition`, then through aliases of a bare name (`type headers = fields`).

        The last item is True when an alias was followed.
        """
        origin, start = iface, pos
        seen: set[tuple[str, str]] = set()
        while True:
            iface, name, item = self.definition(iface, name, pos)
            target = item.target
            if item.kind != "alias" or not isinstance(target, Ref) or target.borrow:
                return iface, name, item, bool(seen)
            if (iface.key, name) in seen:
                raise origin.source.error(start, f"type alias `{name}` goes round in a circle")
            if len(seen) >= MAX_DEPTH:
                raise origin.source.error(start, f"type aliases nested more than {MAX_DEPTH} deep")
            seen.add((iface.key, name))
            name, pos = target.name, target.pos

    def local_names(self, iface: RawInterface) -> dict[tuple[str, str], str]:
        """(defining interface, name) -> its name in `iface`; a name of its own before an alias's."""
        names: dict[tuple[str, str], str] = {}
        for aliases in (False, True):
            for local, item in iface.defs.items():
                owner, name, _, aliased = self.final(iface, local, item.pos)
                if aliased == aliases:
                    names.setdefault((owner.key, name), local)
        return names

    def interface(self, iface: RawInterface) -> WitInterface:
        """The interface's functions as a component importing it sees them."""
        build = _Builder(self, self.local_names(iface))
        for local, item in iface.defs.items():
            build.named(iface, local, item.pos)  # every type checked, used or not
        functions = {
            func.name: FuncSig(
                tuple((name, build.type(iface, node)) for name, node in func.params),
                None if func.result is None else build.type(iface, func.result),
            )
            for func in iface.functions
        }
        uses: dict[str, tuple[str, str]] = {}
        for local, item in iface.defs.items():
            if item.kind == "use":
                owner, name, found, _ = self.final(iface, local, item.pos)
                if found.kind != "resource":
                    owner, name, _ = self.definition(iface, local, item.pos)
                uses[local] = (owner.key, name)
        resources = tuple(name for name, item in iface.defs.items() if item.kind == "resource")
        return WitInterface(
            iface.key, iface.package[1], MappingProxyType(functions), resources, MappingProxyType(uses)
        )


class _Builder:
    """`WitType`s as one importing interface sees them (named by its local names)."""

    def __init__(self, resolver: _Resolver, names: dict[tuple[str, str], str]) -> None:
        self.resolver = resolver
        self.names = names
        self.built: dict[tuple[str, str], WitType] = {}
        self.active: list[tuple[str, str]] = []

    def type(self, iface: RawInterface, node: Node) -> WitType:
        """The type `node`, written in `iface`."""
        if isinstance(node, Prim):
            return node
        if isinstance(node, ListNode):
            return ListOf(self.type(iface, node.element))
        if isinstance(node, OptionNode):
            return OptionOf(self.type(iface, node.inner))
        if isinstance(node, TupleNode):
            return TupleOf(tuple(self.type(iface, item) for item in node.items))
        if isinstance(node, ResultNode):
            return ResultOf(self.optional(iface, node.ok), self.optional(iface, node.err))
        if node.borrow:
            owner, defined, item, _ = self.resolver.final(iface, node.name, node.pos)
            if item.kind != "resource":
                raise iface.source.error(node.pos, f"borrow<{node.name}>: `{node.name}` is not a resource")
            return Borrow(self.names.get((owner.key, defined), "resource"))
        return self.named(iface, node.name, node.pos)

    def optional(self, iface: RawInterface, node: Node | None) -> WitType | None:
        return None if node is None else self.type(iface, node)

    def named(self, iface: RawInterface, name: str, pos: int) -> WitType:
        """The type `name` names in `iface` (each definition built once)."""
        owner, defined, item = self.resolver.definition(iface, name, pos)
        key = (owner.key, defined)
        if key in self.built:
            return self.built[key]
        if key in self.active:
            raise owner.source.error(item.pos, f"type `{defined}` refers to itself")
        if len(self.active) >= MAX_DEPTH:
            raise iface.source.error(pos, f"types nested more than {MAX_DEPTH} deep")
        self.active.append(key)
        local = self.names.get(key)
        members = [(member, self.optional(owner, node)) for member, node in item.members]
        built: WitType
        if item.kind == "alias":
            assert item.target is not None
            built = self.type(owner, item.target)
        elif item.kind == "record":
            built = RecordOf(tuple((member, ty) for member, ty in members if ty is not None), name=local)
        elif item.kind == "variant":
            built = VariantOf(tuple(members), name=local)
        elif item.kind == "enum":
            built = EnumOf(tuple(member for member, _ in members))
        elif item.kind == "flags":
            built = FlagsOf(tuple(member for member, _ in members))
        else:
            built = Own(local or "resource")
        self.active.pop()
        self.built[key] = built
        return built


def load_wit(paths: Iterable[Path]) -> dict[str, WitInterface]:
    """Parse WIT files (a directory stands for its `*.wit`) into their interfaces, by name.

    The files of one directory are one package, declared by `package` in at
    least one of them. Raises `WitError` naming the file and line of a
    syntax error or of a name that is not defined, or naming the package
    that is declared twice or not at all.
    """
    files: dict[Path, list[Path]] = {}
    for path in paths:
        for file in sorted(path.glob("*.wit")) if path.is_dir() else [path]:
            files.setdefault(file.parent, []).append(file)
    interfaces: list[RawInterface] = []
    seen: dict[str, Path] = {}
    for directory, group in files.items():
        package, found = _read_package(group)
        if package[0] in seen:
            other = seen[package[0]]
            raise WitError(f"{directory}: package {package[0]} is loaded twice (also from {other})")
        seen[package[0]] = directory
        interfaces += found
    resolver = _Resolver(interfaces)
    return {iface.key: resolver.interface(iface) for iface in interfaces}


def _read_package(files: list[Path]) -> tuple[tuple[str, str], list[RawInterface]]:
    # The files of one directory: one package.
    package: tuple[str, str] | None = None
    interfaces: list[RawInterface] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise WitError(f"{file}: cannot be read ({exc})") from None
        declared, found = parse(file, text)
        if declared is not None and package is not None and declared != package:
            raise WitError(f"{file}: declares package {_label(declared)}, another file {_label(package)}")
        package = declared or package
        interfaces += found
    if package is None:
        raise WitError(f"{files[0].parent}: no file declares the package (`package ns:name@version;`)")
    names: set[str] = set()
    for iface in interfaces:
        if iface.name in names:
            raise iface.source.error(iface.pos, f"interface {iface.name} is defined twice in the package")
        names.add(iface.name)
        iface.package = package
    return package, interfaces


def _label(package: tuple[str, str]) -> str:
    return f"{package[0]}@{package[1]}" if package[1] else package[0]


def wit_dir() -> Path:
    """The vendored WIT as installed: the guest SDK's copy of the repository's `wit/`."""
    return Path(wasikv_sdk.__file__).resolve().parent / "wit"


@functools.cache
def wasi_interfaces() -> Mapping[str, WitInterface]:
    """The vendored WASI 0.2 interfaces (`WASI_PACKAGES`), by name; parsed once per process."""
    deps = wit_dir() / "deps"
    return MappingProxyType(load_wit(deps / package for package in WASI_PACKAGES))


__all__ = ["WASI_PACKAGES", "WitError", "WitInterface", "load_wit", "wasi_interfaces", "wit_dir"]
