"""WIT source read into function signatures: the vendored WASI 0.2 WIT, small WITs of each
construct, hostile WIT, and the imports of a real componentize-py component compared."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from wasikv import Host
from wasikv.runtime._wit_syntax import MAX_DEPTH
from wasikv.runtime.host_functions import HostInterface
from wasikv.runtime.wit_source import WitError, load_wit, wasi_interfaces, wit_dir
from wasikv.runtime.wit_types import (
    STRING,
    U8,
    U32,
    U64,
    Borrow,
    EnumOf,
    FlagsOf,
    FuncSig,
    ListOf,
    OptionOf,
    Own,
    RecordOf,
    ResultOf,
    TupleOf,
    VariantOf,
    WitType,
)

from .support import ROOT, suite_wasm


def sig(*params: WitType, result: WitType | None = None) -> FuncSig:
    """A signature from its parameter types (names are not compared)."""
    return FuncSig(tuple((f"p{i}", ty) for i, ty in enumerate(params)), result)


def write_package(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def one(tmp_path: Path, body: str, package: str = "test:pkg@1.0.0") -> dict[str, FuncSig]:
    """The functions of interface `i` in a one-file package."""
    found = load_wit([write_package(tmp_path / "pkg", {"a.wit": f"package {package};\n{body}"})])
    return dict(found[f"{package.partition('@')[0]}/i"].functions)


# ------------------------------------------------------------ the vendored WASI WIT


def test_the_vendored_wasi_interfaces_are_all_there() -> None:
    found = wasi_interfaces()
    assert len(found) == 31
    assert {iface.version for iface in found.values()} == {"0.2.0"}
    assert found["wasi:http/types"].qualified == "wasi:http/types@0.2.0"
    assert sum(len(iface.functions) for iface in found.values()) == 176
    assert wasi_interfaces() is found  # parsed once


def test_wasi_signatures_follow_uses_and_aliases() -> None:
    found = wasi_interfaces()
    http = found["wasi:http/types"]
    # `type headers = fields`: the resource's own name, as wasmtime reports it.
    assert http.functions["[method]incoming-request.headers"] == sig(
        Borrow("incoming-request"), result=Own("fields")
    )
    assert http.functions["[method]incoming-request.headers"].params[0][0] == "self"
    assert http.functions["[constructor]fields"] == sig(result=Own("fields"))
    assert http.functions["[static]fields.from-list"] == sig(
        ListOf(TupleOf((STRING, ListOf(U8)))),
        result=ResultOf(
            Own("fields"), VariantOf((("invalid-syntax", None), ("forbidden", None), ("immutable", None)))
        ),
    )
    assert http.functions["[static]outgoing-body.finish"].params[1][1] == OptionOf(Own("fields"))
    # `use wasi:io/error@0.2.0.{error as io-error}`: the local name.
    assert http.functions["http-error-code"].params == (("err", Borrow("io-error")),)
    assert http.uses["io-error"] == ("wasi:io/error", "error")
    assert http.uses["duration"] == ("wasi:clocks/monotonic-clock", "duration")
    assert http.functions["[method]request-options.connect-timeout"].result == OptionOf(U64)
    assert "fields" in http.resources and "headers" not in http.resources
    # `%stream` is the name `stream`.
    assert http.functions["[method]incoming-body.stream"] == sig(
        Borrow("incoming-body"), result=ResultOf(Own("input-stream"), None)
    )
    assert found["wasi:io/poll"].functions["poll"] == sig(ListOf(Borrow("pollable")), result=ListOf(U32))
    # wasi:filesystem/types uses `error` from wasi:io/streams, which uses it from wasi:io/error.
    assert found["wasi:filesystem/types"].uses["error"] == ("wasi:io/error", "error")
    stat = found["wasi:filesystem/types"].functions["[method]descriptor.stat"].result
    assert isinstance(stat, ResultOf) and isinstance(stat.ok, RecordOf) and stat.ok.name == "descriptor-stat"
    assert isinstance(stat.err, EnumOf) and stat.err.names[:2] == ("access", "would-block")


def test_the_sdk_copy_is_the_one_read() -> None:
    assert (wit_dir() / "deps" / "http" / "types.wit").read_text() == (
        ROOT / "wit" / "deps" / "http" / "types.wit"
    ).read_text()


def test_the_whole_wit_tree_loads_worlds_and_all() -> None:
    paths = [ROOT / "wit", *sorted(p for p in (ROOT / "wit" / "deps").iterdir() if p.is_dir())]
    found = load_wit(paths)
    assert "wasikv:app/http" in found and "wasi:keyvalue/store" in found
    assert found["wasi:keyvalue/store"].version == "0.2.0-draft2"


@pytest.mark.parametrize(
    "wit",
    [
        ROOT / "wit" / "deps" / "keyvalue",
        ROOT / "wit" / "deps" / "config",
        *sorted(path for path in (ROOT / "tests" / "wit").iterdir() if path.is_dir()),
    ],
    ids=lambda path: path.name,
)
def test_keyvalue_and_config_wits_match_what_wasikv_declares(
    wit: Path, make_host: Callable[..., Host]
) -> None:
    # wasikv declares these signatures by hand; the parser must read the WITs they came from the same way.
    host = make_host()
    imported = [iface for iface in load_wit([wit]).values() if not iface.name.endswith("/watcher")]
    assert imported  # the watcher is exported, not imported
    for iface in imported:
        candidates = host.provided.get(iface.qualified, ())
        assert candidates, iface.qualified
        assert any(all(implements(c, name, s) for name, s in iface.functions.items()) for c in candidates), (
            iface.qualified
        )


def implements(interface: HostInterface, name: str, signature: FuncSig) -> bool:
    function = interface.function(name)
    return function is not None and function.signature == signature


# ------------------------------------------------------------ each construct


def test_aliases_resolve_to_their_targets(tmp_path: Path) -> None:
    functions = one(
        tmp_path,
        """
        interface i {
            type duration = u64;
            type later = duration;
            type bytes = list<u8>;
            type pair = tuple<later, bytes>;
            resource thing;
            type other = thing;
            type again = other;
            f: func(d: later, p: pair) -> option<again>;
            g: func(t: borrow<again>);
            h: func() -> result<_, later>;
            k: func() -> result<bytes>;
            m: func() -> result;
        }
        """,
    )
    assert functions["f"] == sig(U64, TupleOf((U64, ListOf(U8))), result=OptionOf(Own("thing")))
    assert functions["g"] == sig(Borrow("thing"))
    assert functions["h"] == sig(result=ResultOf(None, U64))
    assert functions["k"] == sig(result=ResultOf(ListOf(U8), None))
    assert functions["m"] == sig(result=ResultOf(None, None))


def test_records_variants_enums_and_flags(tmp_path: Path) -> None:
    functions = one(
        tmp_path,
        """
        interface i {
            record point { x: u32, %type: string, }
            variant shape { none, dot(point), label(string) }
            enum color { red, green }
            flags perms { read, write }
            f: func(s: shape, c: color) -> perms;
        }
        """,
    )
    point = RecordOf((("x", U32), ("type", STRING)), name="point")
    shape = VariantOf((("none", None), ("dot", point), ("label", STRING)), name="shape")
    assert functions["f"] == sig(shape, EnumOf(("red", "green")), result=FlagsOf(("read", "write")))
    assert functions["f"].params[0][1].render() == (
        "shape { none, dot(point { x: u32, type: string }), label(string) }"
    )


def test_resource_functions_have_component_model_names(tmp_path: Path) -> None:
    functions = one(
        tmp_path,
        """
        interface i {
            resource r {
                constructor(n: u32);
                %stream: func() -> u32;
                make: static func(n: u32) -> r;
                merge: func(other: borrow<r>, last: r);
            }
        }
        """,
    )
    assert sorted(functions) == ["[constructor]r", "[method]r.merge", "[method]r.stream", "[static]r.make"]
    assert functions["[constructor]r"] == sig(U32, result=Own("r"))
    assert functions["[method]r.stream"].params == (("self", Borrow("r")),)
    assert functions["[static]r.make"] == sig(U32, result=Own("r"))
    assert functions["[method]r.merge"] == sig(Borrow("r"), Borrow("r"), Own("r"))


def test_uses_take_local_names_across_interfaces_and_packages(tmp_path: Path) -> None:
    base = write_package(
        tmp_path / "base",
        {
            "a.wit": """
                package base:types@0.3.1;
                interface defs {
                    resource res;
                    type alias-of-res = res;
                    record rec { r: u32 }
                }
            """,
            # A second file of the package, without its own `package` line.
            "b.wit": """
                interface relay {
                    use defs.{res, rec};
                    get: func() -> rec;
                }
            """,
        },
    )
    user = write_package(
        tmp_path / "user",
        {
            "u.wit": """
                package user:app;
                interface i {
                    use base:types/relay@0.3.1.{res as handle, rec as data};
                    use base:types/defs.{alias-of-res};
                    f: func(h: borrow<handle>) -> data;
                    g: func() -> alias-of-res;
                }
                interface only-alias {
                    use base:types/defs@0.3.1.{alias-of-res};
                    g: func() -> alias-of-res;
                }
            """
        },
    )
    found = load_wit([base, user])
    iface = found["user:app/i"]
    assert iface.version == ""
    assert iface.functions["f"] == sig(Borrow("handle"), result=RecordOf((("r", U32),)))
    data = iface.functions["f"].result
    assert isinstance(data, RecordOf) and data.name == "data"
    # The resource is visible as `handle`: that name wins over the alias's.
    assert iface.functions["g"].result == Own("handle")
    assert iface.uses == {
        "handle": ("base:types/defs", "res"),
        "data": ("base:types/defs", "rec"),
        "alias-of-res": ("base:types/defs", "res"),
    }
    # Only the alias is visible: its name, pointing at the resource.
    assert found["user:app/only-alias"].functions["g"].result == Own("alias-of-res")
    assert found["base:types/relay"].functions["get"].result == RecordOf((("r", U32),))
    assert found["base:types/defs"].resources == ("res",)


def test_gates_unstable_items_are_left_out(tmp_path: Path) -> None:
    found = load_wit(
        [
            write_package(
                tmp_path / "pkg",
                {
                    "a.wit": """
                        package test:gates@0.2.9;
                        @since(version = 0.2.0)
                        interface i {
                            @since(version = 0.2.0)
                            use other.{thing};
                            @unstable(feature = fancy)
                            use other.{gadget};
                            @since(version = 0.2.0)
                            @deprecated(version = 0.2.2)
                            old: func();
                            @since(version = 0.2.2, feature = fancy-foo)
                            new: func(t: borrow<thing>);
                            @unstable(feature = fancy)
                            fancy: func(g: borrow<gadget>);
                            @unstable(feature = fancy)
                            record fancy-record { a: u8 }
                            resource r {
                                @since(version = 0.2.0)
                                constructor();
                                @unstable(feature = fancy)
                                shiny: func();
                            }
                        }
                        interface other { resource thing; resource gadget; }
                        @unstable(feature = fancy)
                        interface hidden { f: func(); }
                        @since(version = 0.2.0)
                        world w {
                            @unstable(feature = fancy)
                            import hidden;
                        }
                    """
                },
            )
        ]
    )
    assert sorted(found) == ["test:gates/i", "test:gates/other"]
    assert sorted(found["test:gates/i"].functions) == ["[constructor]r", "new", "old"]
    assert "gadget" not in found["test:gates/i"].uses


def test_worlds_and_comments_are_skipped(tmp_path: Path) -> None:
    functions = one(
        tmp_path,
        """
        /* a block comment /* nested */ still a comment */
        world w {
            include wasi:cli/imports@0.2.0;
            import inline: interface { f: func() -> u8; }
            import g: func();
            export i;
        }
        /// Docs.
        interface i {
            // a line comment
            f: func(/* inline */ x: u8) -> u8; // trailing
        }
        world w2 {}
        """,
    )
    assert functions == {"f": sig(U8, result=U8)}


# ------------------------------------------------------------ hostile and broken WIT


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("interface i {\n  f: func()\n}", 3, "expected `;`, found '}'"),
        ("interface i {\n  f: func(x: u8) -> ;\n}", 2, "expected a type"),
        ("interface i {\n  f: func() -> nope;\n}", 2, "`nope` is not defined in interface test:pkg/i"),
        ("interface i {\n\n  use missing.{x};\n}", 3, "interface test:pkg/missing is not among the WIT"),
        (
            "interface i {\n  use wasi:io/streams@0.2.0.{x};\n}",
            2,
            "wasi:io/streams@0.2.0 is not among the WIT",
        ),
        ("interface i {\n  use i.{x};\n  f: func() -> x;\n}", 2, "`use` of `x` goes round in a circle"),
        (
            "interface i {\n  use j.{x};\n}\ninterface j {\n  y: func();\n}",
            2,
            "`x` is not defined in interface test:pkg/j",
        ),
        (
            "interface i {\n  use j.{x};\n  f: func() -> x;\n}\ninterface j {\n  use i.{x};\n}",
            2,
            "goes round",
        ),
        ("interface i {\n  type a = b;\n  type b = a;\n  f: func() -> a;\n}", 2, "goes round in a circle"),
        ("interface i {\n  record r { next: option<r> }\n}", 2, "refers to itself"),
        ("interface i {\n  type t = u8;\n  f: func(x: borrow<t>);\n}", 3, "`t` is not a resource"),
        ("interface i {\n  type t = u8;\n  type t = u16;\n}", 3, "`t` is defined twice"),
        ("interface i {\n  f: func();\n  f: func();\n}", 3, "f is defined twice"),
        ("interface i {\n  resource r { m: func(); m: func(); }\n}", 2, "[method]r.m is defined twice"),
        ("interface i {\n  enum e { a, b, a }\n}", 2, "`a` appears twice"),
        ("interface i {\n  record r {}\n}", 2, "an empty record"),
        ("interface i {\n  f: func() -> future<u8>;\n}", 2, "`future` types are not supported"),
        ("interface i {\n  f: func() -> list<u8, 4>;\n}", 2, "fixed-size lists are not supported"),
        ("interface i {\n  @frobnicate(x)\n  f: func();\n}", 2, "unknown attribute @frobnicate"),
        ("interface i {\n  f: func();\n  /* never closed\n}", 3, "unterminated /* comment"),
        ("interface i {\n  f: func() -> u8 $;\n}", 2, "unexpected character '$'"),
        ("interface i {\n  f: func();\n", 3, "found end of file"),
        ("interface i {}\ninterface i {}", 2, "interface i is defined twice"),
        ("use wasi:io/streams;", 1, "expected `interface` or `world`"),
        ("world w {\n  import x;\n", 3, "expected `}`"),
    ],
)
def test_broken_wit_names_the_file_and_line(tmp_path: Path, body: str, line: int, message: str) -> None:
    directory = write_package(tmp_path / "pkg", {"a.wit": f"package test:pkg;\n{body}"})
    with pytest.raises(WitError) as raised:
        load_wit([directory])
    text = str(raised.value)
    # `line` counts from the body: the file starts with its `package` line.
    assert text.startswith(f"{directory / 'a.wit'}:{line + 1}: "), text
    assert message in text


def test_deep_nesting_is_an_error_not_a_crash(tmp_path: Path) -> None:
    def nested(depth: int) -> str:
        return "list<" * depth + "u8" + ">" * depth

    assert one(tmp_path / "a", f"interface i {{ f: func() -> {nested(MAX_DEPTH)}; }}")
    with pytest.raises(WitError, match="nested more than"):
        one(tmp_path / "b", f"interface i {{ f: func() -> {nested(5000)}; }}")


def test_long_chains_of_named_types_are_an_error_not_a_crash(tmp_path: Path) -> None:
    chain = "\n".join(f"type t{i} = list<t{i + 1}>;" for i in range(3000))
    with pytest.raises(WitError, match="types nested more than"):
        one(tmp_path / "a", f"interface i {{\n{chain}\ntype t3000 = u8;\nf: func() -> t0;\n}}")
    aliases = "\n".join(f"type t{i} = t{i + 1};" for i in range(3000))
    with pytest.raises(WitError, match="aliases nested more than"):
        one(tmp_path / "b", f"interface i {{\n{aliases}\ntype t3000 = u8;\nf: func() -> t0;\n}}")


def test_package_errors(tmp_path: Path) -> None:
    nameless = write_package(tmp_path / "nameless", {"a.wit": "interface i {}"})
    with pytest.raises(WitError, match="no file declares the package"):
        load_wit([nameless])
    split = write_package(tmp_path / "split", {"a.wit": "package a:b@1.0.0;", "b.wit": "package a:c@1.0.0;"})
    with pytest.raises(WitError, match=r"b\.wit: declares package a:c@1\.0\.0, another file a:b@1\.0\.0"):
        load_wit([split])
    one_ = write_package(tmp_path / "one", {"a.wit": "package a:b@1.0.0;"})
    two = write_package(tmp_path / "two", {"a.wit": "package a:b@2.0.0;"})
    with pytest.raises(WitError, match="package a:b is loaded twice"):
        load_wit([one_, two])
    binary = write_package(tmp_path / "binary", {})
    (binary / "a.wit").write_bytes(b"package a:b;\xff\xfe")
    with pytest.raises(WitError, match="cannot be read"):
        load_wit([binary])


# ------------------------------------------------------------ a real component


@pytest.mark.component
def test_signatures_equal_a_real_components_imports(make_host: Callable[..., Host]) -> None:
    """Every WASI function the suite guest imports (componentize-py 0.25.1 imports WASI @0.2.9)
    has the signature the vendored 0.2.0 WIT gives, records' and variants' names included."""
    host = make_host()
    imports = host.imports(host.load(suite_wasm(), check=False))
    ours = wasi_interfaces()
    compared: dict[str, int] = {}
    for name, functions in imports.items():
        base, _, version = name.partition("@")
        if base not in ours:
            continue
        assert version.startswith("0.2."), name
        for function, theirs in functions.items():
            assert function in ours[base].functions, f"{name} {function} is not in the vendored WIT"
            mine = ours[base].functions[function]
            assert mine == theirs, f"{name} {function}: {mine.render()} != {theirs.render()}"
            assert mine.render() == theirs.render()
            assert [p for p, _ in mine.params] == [p for p, _ in theirs.params]
        compared[base] = len(functions)
    # All of the vendored WASI but the two exported interfaces (cli/run, http/incoming-handler).
    assert set(compared) == set(ours) - {"wasi:cli/run", "wasi:http/incoming-handler"}
    assert compared["wasi:http/types"] == 51 and compared["wasi:io/streams"] == 15
