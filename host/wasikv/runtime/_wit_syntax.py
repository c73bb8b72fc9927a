"""WIT source text into its syntax: a file's package, interfaces and their items (names not yet resolved).

The subset WASI 0.2 uses: `package`, interfaces with `use`, `type` aliases,
records, variants, enums, flags, resources (constructors, methods, static
functions) and functions; worlds are skipped whole. Items gated
`@unstable(...)` are left out. `wit_source` resolves the names.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import WasikvError
from .wit_types import BOOL, CHAR, F32, F64, S8, S16, S32, S64, STRING, U8, U16, U32, U64, Prim

#: How deeply types may nest (`list<list<...>>`, chains of named types) before the source is refused.
MAX_DEPTH = 64


class WitError(WasikvError):
    """WIT source that cannot be read; the message starts with `file:line:`."""


_TOKENS = re.compile(
    r"""
    (?P<space>\s+|//[^\n]*)
    |(?P<block>/\*)
    |(?P<version>\d+\.\d+\.\d+(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?)
    |(?P<int>\d+)
    |(?P<id>%?[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z][A-Za-z0-9]*)*)
    |(?P<punct>->|[{}()<>,;:=.@/_])
    """,
    re.VERBOSE,
)

_PRIMS: Mapping[str, Prim] = {
    p.name: p for p in (BOOL, U8, U16, U32, U64, S8, S16, S32, S64, F32, F64, CHAR, STRING)
}

_BLOCK_COMMENT = re.compile(r"/\*|\*/")


@dataclass(frozen=True)
class Ref:
    """A named type, not yet resolved: `R` (own, for a resource), or `borrow<R>`."""

    name: str
    pos: int
    borrow: bool = False


@dataclass(frozen=True)
class ListNode:
    element: Node


@dataclass(frozen=True)
class OptionNode:
    inner: Node


@dataclass(frozen=True)
class ResultNode:
    ok: Node | None
    err: Node | None


@dataclass(frozen=True)
class TupleNode:
    items: tuple[Node, ...]


#: Type syntax, names not yet resolved.
Node = Prim | Ref | ListNode | OptionNode | ResultNode | TupleNode

#: A `use` target: (package, or None for this package; interface; version or None).
UsePath = tuple[str | None, str, str | None]


@dataclass
class Def:
    """A named item of an interface: a type definition or a `use`d name."""

    kind: str  # "use", "alias", "record", "variant", "enum", "flags", "resource"
    pos: int
    #: use: the interface and the name used from it.
    use: tuple[UsePath, str] | None = None
    #: alias: the type it names.
    target: Node | None = None
    #: record fields, variant cases (payload or None), enum and flags names (None).
    members: tuple[tuple[str, Node | None], ...] = ()


@dataclass
class Func:
    """A function: its component-model name, parameters and result."""

    name: str
    params: list[tuple[str, Node]]
    result: Node | None


@dataclass
class Source:
    """A file's text, for messages that name its line."""

    path: Path
    text: str

    def error(self, pos: int, message: str) -> WitError:
        """`WitError("path:line: message")` for the character at `pos`."""
        return WitError(f"{self.path}:{self.text.count(chr(10), 0, pos) + 1}: {message}")


@dataclass
class RawInterface:
    """An interface as written: its named items (in source order) and functions."""

    name: str
    source: Source
    pos: int
    defs: dict[str, Def] = field(default_factory=dict)
    functions: list[Func] = field(default_factory=list)
    #: (name, version), set when the directory's files have all been read.
    package: tuple[str, str] = ("", "")

    @property
    def key(self) -> str:
        """The interface's full name without version: "wasi:io/streams"."""
        return f"{self.package[0]}/{self.name}"


class _Parser:
    """One file: its `package` line and its interfaces (worlds are skipped)."""

    def __init__(self, source: Source) -> None:
        self.src = source
        self.tokens: list[tuple[str, str, int]] = []
        text, pos = source.text, 0
        while pos < len(text):
            match = _TOKENS.match(text, pos)
            if match is None:
                raise source.error(pos, f"unexpected character {text[pos]!r}")
            if match.lastgroup == "block":
                pos = self._skip_block_comment(pos)
                continue
            if match.lastgroup != "space":
                self.tokens.append((match.lastgroup or "", match.group(), pos))
            pos = match.end()
        self.tokens.append(("end", "end of file", len(text)))
        self.at = 0

    def _skip_block_comment(self, start: int) -> int:
        # Block comments nest in WIT.
        depth, pos = 0, start
        while True:
            found = _BLOCK_COMMENT.search(self.src.text, pos)
            if found is None:
                raise self.src.error(start, "unterminated /* comment")
            depth += 1 if found.group() == "/*" else -1
            pos = found.end()
            if depth == 0:
                return pos

    # Tokens. Keywords are compared with the raw text, so `%type` is a name, never `type`.
    def peek(self, ahead: int = 0) -> str:
        return self.tokens[min(self.at + ahead, len(self.tokens) - 1)][1]

    def kind(self) -> str:
        return self.tokens[self.at][0]

    def pos(self) -> int:
        return self.tokens[self.at][2]

    def take(self, text: str) -> bool:
        if self.tokens[self.at][1] == text and self.kind() != "end":
            self.at += 1
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.take(text):
            raise self.unexpected(f"`{text}`")

    def unexpected(self, wanted: str) -> WitError:
        kind, text, pos = self.tokens[self.at]
        return self.src.error(pos, f"expected {wanted}, found {text if kind == 'end' else repr(text)}")

    def ident(self) -> str:
        if self.kind() != "id":
            raise self.unexpected("a name")
        self.at += 1
        return self.tokens[self.at - 1][1].removeprefix("%")

    def version(self) -> str:
        if self.kind() != "version":
            raise self.unexpected("a version")
        self.at += 1
        return self.tokens[self.at - 1][1]

    def items(self, close: str) -> Iterator[None]:
        """Yield once per comma-separated item up to `close` (a trailing comma allowed)."""
        while not self.take(close):
            yield
            if not self.take(","):
                self.expect(close)
                return

    # The file.
    def parse(self) -> tuple[tuple[str, str] | None, list[RawInterface]]:
        package: tuple[str, str] | None = None
        interfaces: list[RawInterface] = []
        if self.peek() == "package":
            self.at += 1
            package = self.package_name()
            if self.peek() == "{":
                raise self.unexpected("`;` (nested package blocks are not supported)")
            self.expect(";")
        while self.kind() != "end":
            unstable = self.gates()
            if self.take("interface"):
                start = self.pos()
                iface = RawInterface(self.ident(), self.src, start)
                self.interface_items(iface)
                if not unstable:
                    interfaces.append(iface)
            elif self.take("world"):
                self.ident()
                self.skip_braces()
            else:
                raise self.unexpected("`interface` or `world`")
        return package, interfaces

    def package_name(self) -> tuple[str, str]:
        name = self.ident()
        self.expect(":")
        name += f":{self.ident()}"
        return name, self.version() if self.take("@") else ""

    def gates(self) -> bool:
        """Skip `@since(...)`, `@deprecated(...)`, `@unstable(...)`; True when one is `@unstable`."""
        unstable = False
        while self.take("@"):
            start, name = self.pos(), self.ident()
            if name not in ("since", "unstable", "deprecated"):
                raise self.src.error(start, f"unknown attribute @{name}")
            unstable |= name == "unstable"
            self.expect("(")
            while not self.take(")"):
                if self.kind() == "end" or self.peek() in ("{", "}", ";"):
                    raise self.unexpected("`)`")
                self.at += 1
        return unstable

    def skip_braces(self) -> None:
        self.expect("{")
        depth = 1
        while depth:
            if self.kind() == "end":
                raise self.unexpected("`}`")
            depth += {"{": 1, "}": -1}.get(self.peek(), 0)
            self.at += 1

    # An interface.
    def define(self, iface: RawInterface, name: str, item: Def) -> None:
        if name in iface.defs:
            raise self.src.error(item.pos, f"`{name}` is defined twice in interface {iface.name}")
        iface.defs[name] = item

    def interface_items(self, iface: RawInterface) -> None:
        self.expect("{")
        while not self.take("}"):
            unstable = self.gates()
            defined, functions = len(iface.defs), len(iface.functions)
            self.interface_item(iface)
            if unstable:
                for name in list(iface.defs)[defined:]:
                    del iface.defs[name]
                del iface.functions[functions:]

    def interface_item(self, iface: RawInterface) -> None:
        start, keyword = self.pos(), self.peek()
        if self.take("use"):
            target = self.use_path()
            self.expect(".")
            self.expect("{")
            for _ in self.items("}"):
                at, name = self.pos(), self.ident()
                local = self.ident() if self.take("as") else name
                self.define(iface, local, Def("use", at, use=(target, name)))
            self.expect(";")
        elif self.take("type"):
            name = self.ident()
            self.expect("=")
            self.define(iface, name, Def("alias", start, target=self.type()))
            self.expect(";")
        elif keyword in ("record", "variant", "enum", "flags"):
            self.at += 1
            name = self.ident()
            self.define(iface, name, Def(keyword, start, members=self.members(keyword)))
        elif self.take("resource"):
            name = self.ident()
            self.define(iface, name, Def("resource", start))
            if not self.take(";"):
                self.resource_items(iface, name)
        elif self.kind() == "id" and self.peek(1) == ":":
            name = self.ident()
            self.expect(":")
            self.add_function(iface, self.func(name), start)
        else:
            raise self.unexpected("an interface item (`use`, `type`, a type definition or a function)")

    def add_function(self, iface: RawInterface, func: Func, pos: int) -> None:
        if any(known.name == func.name for known in iface.functions):
            raise self.src.error(pos, f"{func.name} is defined twice in interface {iface.name}")
        iface.functions.append(func)

    def use_path(self) -> UsePath:
        first = self.ident()
        if not self.take(":"):
            return None, first, None
        package = f"{first}:{self.ident()}"
        self.expect("/")
        name = self.ident()
        return package, name, self.version() if self.take("@") else None

    def members(self, keyword: str) -> tuple[tuple[str, Node | None], ...]:
        self.expect("{")
        found: list[tuple[str, Node | None]] = []
        for _ in self.items("}"):
            at, name, payload = self.pos(), self.ident(), None
            if any(name == known for known, _ in found):
                raise self.src.error(at, f"`{name}` appears twice in this {keyword}")
            if keyword == "record":
                self.expect(":")
                payload = self.type()
            elif keyword == "variant" and self.take("("):
                payload = self.type()
                self.expect(")")
            found.append((name, payload))
        if not found:
            raise self.src.error(self.tokens[self.at - 1][2], f"an empty {keyword}")
        return tuple(found)

    def resource_items(self, iface: RawInterface, resource: str) -> None:
        self.expect("{")
        while not self.take("}"):
            unstable = self.gates()
            start = self.pos()
            if self.take("constructor"):
                func = self.func(f"[constructor]{resource}", keyword=False, result=Ref(resource, start))
            else:
                name = self.ident()
                self.expect(":")
                if self.take("static"):
                    func = self.func(f"[static]{resource}.{name}")
                else:
                    func = self.func(
                        f"[method]{resource}.{name}", [("self", Ref(resource, start, borrow=True))]
                    )
            if not unstable:
                self.add_function(iface, func, start)

    def func(
        self,
        name: str,
        params: list[tuple[str, Node]] | None = None,
        keyword: bool = True,
        result: Node | None = None,
    ) -> Func:
        if keyword:
            self.expect("func")
        self.expect("(")
        params = list(params or ())
        for _ in self.items(")"):
            param = self.ident()
            self.expect(":")
            params.append((param, self.type()))
        if self.take("->"):
            result = self.type()
        self.expect(";")
        return Func(name, params, result)

    def type(self, depth: int = 0) -> Node:
        start, raw = self.pos(), self.peek()
        if depth > MAX_DEPTH:
            raise self.src.error(start, f"types nested more than {MAX_DEPTH} deep")
        if self.kind() != "id":
            raise self.unexpected("a type")
        self.at += 1
        if raw in _PRIMS:
            return _PRIMS[raw]
        if raw == "result" and self.peek() != "<":
            return ResultNode(None, None)
        if raw in ("future", "stream", "error-context", "own"):
            raise self.src.error(start, f"`{raw}` types are not supported")
        if raw not in ("list", "option", "borrow", "tuple", "result"):
            return Ref(raw.removeprefix("%"), start)
        self.expect("<")
        if raw == "tuple":
            return TupleNode(tuple(self.type(depth + 1) for _ in self.items(">")))
        node: Node
        if raw == "borrow":
            node = Ref(self.ident(), start, borrow=True)
        elif raw == "result":
            ok = None if self.take("_") else self.type(depth + 1)
            node = ResultNode(ok, self.type(depth + 1) if self.take(",") else None)
        elif raw == "option":
            node = OptionNode(self.type(depth + 1))
        else:
            node = ListNode(self.type(depth + 1))
            if self.peek() == ",":
                raise self.src.error(start, "fixed-size lists are not supported")
        self.expect(">")
        return node


def parse(path: Path, text: str) -> tuple[tuple[str, str] | None, list[RawInterface]]:
    """A file's package (name, version), when it declares one, and its interfaces."""
    return _Parser(Source(path, text)).parse()


__all__ = [
    "MAX_DEPTH",
    "Def",
    "Func",
    "ListNode",
    "Node",
    "OptionNode",
    "RawInterface",
    "Ref",
    "ResultNode",
    "Source",
    "TupleNode",
    "UsePath",
    "WitError",
    "parse",
]
