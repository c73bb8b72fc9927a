"""runtime-config.toml: Spin's [key_value_store.LABEL] tables turned into store URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasikv import Host, open_store
from wasikv.app.runtime_config import (
    RuntimeConfigError,
    default_store_url,
    load_runtime_config,
    sqlite_url,
)
from wasikv.errors import ConfigError


def config(tmp_path: Path, text: str, name: str = "runtime-config.toml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


def test_without_a_file_default_is_sqlite_next_to_the_manifest(tmp_path: Path) -> None:
    stores = load_runtime_config(None, manifest_dir=tmp_path)
    assert stores == {"default": f"sqlite://{tmp_path}/.wasikv/default.db"}
    assert stores["default"] == default_store_url("default", tmp_path)


def test_memory_stores_are_separate_per_label(tmp_path: Path) -> None:
    path = config(
        tmp_path, '[key_value_store.cache]\ntype = "memory"\n[key_value_store.tmp]\ntype = "memory"\n'
    )
    stores = load_runtime_config(path, manifest_dir=tmp_path)
    assert stores["cache"] == "memory:cache"
    assert stores["tmp"] == "memory:tmp"
    assert stores["default"] == default_store_url("default", tmp_path)
    with Host(stores, compile_cache=False) as host:
        host.bucket("cache").set("k", b"1")
        assert host.bucket("tmp").get("k") is None
        assert host.bucket("cache").get("k") == b"1"


@pytest.mark.parametrize("kind", ["sqlite", "spin"])
def test_sqlite_path_is_relative_to_the_runtime_config(tmp_path: Path, kind: str) -> None:
    manifest_dir = tmp_path / "app"
    path = config(tmp_path / "conf", f'[key_value_store.data]\ntype = "{kind}"\npath = "db/data.db"\n')
    stores = load_runtime_config(path, manifest_dir=manifest_dir)
    assert stores["data"] == f"sqlite://{tmp_path}/conf/db/data.db"
    store = open_store(stores["data"])
    try:
        store.set("k", b"v")
    finally:
        store.close()
    assert (tmp_path / "conf" / "db" / "data.db").is_file()
    assert stores["default"] == f"sqlite://{manifest_dir}/.wasikv/default.db"


def test_sqlite_without_path_lives_in_dot_wasikv_next_to_the_manifest(tmp_path: Path) -> None:
    manifest_dir = tmp_path / "app"
    path = config(tmp_path / "conf", '[key_value_store.users]\ntype = "spin"\n')
    stores = load_runtime_config(path, manifest_dir=manifest_dir)
    assert stores["users"] == f"sqlite://{manifest_dir}/.wasikv/users.db"


def test_absolute_path_and_odd_file_names_survive_the_url(tmp_path: Path) -> None:
    target = tmp_path / "my data?#%20" / "a b%.db"
    path = config(tmp_path, f'[key_value_store.odd]\ntype = "sqlite"\npath = "{target}"\n')
    url = load_runtime_config(path, manifest_dir=tmp_path)["odd"]
    assert url == sqlite_url(target)
    store = open_store(url)
    try:
        store.set("k", b"v")
    finally:
        store.close()
    assert target.is_file()


def test_default_can_be_configured(tmp_path: Path) -> None:
    path = config(tmp_path, '[key_value_store.default]\ntype = "memory"\n')
    assert load_runtime_config(path, manifest_dir=tmp_path) == {"default": "memory:default"}


def test_redis_url_is_kept(tmp_path: Path) -> None:
    path = config(
        tmp_path,
        '[key_value_store.shared]\ntype = "redis"\nurl = "redis://127.0.0.1:6379/2?prefix=app:"\n',
    )
    stores = load_runtime_config(path, manifest_dir=tmp_path)
    assert stores["shared"] == "redis://127.0.0.1:6379/2?prefix=app:"


def test_an_empty_file_gives_the_default(tmp_path: Path) -> None:
    path = config(tmp_path, "# nothing yet\n")
    assert list(load_runtime_config(path, manifest_dir=tmp_path)) == ["default"]


ERRORS: dict[str, tuple[str, list[str]]] = {
    "syntax": ('[key_value_store.a\ntype = "memory"\n', ["line 1, column", "invalid TOML"]),
    "unknown table": ("[sqlite_database.default]\npath = 'x'\n", ["[sqlite_database] is a Spin setting"]),
    "typo table": (
        '[key_value_stores.a]\ntype = "memory"\n',
        [
            "unknown table or key 'key_value_stores'",
            "did you mean 'key_value_store'",
            "[key_value_store.LABEL]",
        ],
    ),
    "not tables": ('key_value_store = "memory"\n', ["'key_value_store' must hold tables"]),
    "store not a table": ('[key_value_store]\na = "memory"\n', ["[key_value_store.a]", "must be a table"]),
    "missing type": ('[key_value_store.a]\npath = "a.db"\n', ["[key_value_store.a]", "'type' is missing"]),
    "type not a string": ("[key_value_store.a]\ntype = 1\n", ["'type' must be a string"]),
    "unknown type": (
        '[key_value_store.a]\ntype = "sqlit"\n',
        ["unknown store type 'sqlit'", "did you mean 'sqlite'", "'memory', 'sqlite', 'spin', 'redis'"],
    ),
    "spin-only type": (
        '[key_value_store.a]\ntype = "aws_dynamo"\n',
        ["'aws_dynamo' (AWS DynamoDB) is not supported"],
    ),
    "unknown key": (
        '[key_value_store.a]\ntype = "sqlite"\nfile = "a.db"\n',
        ["[key_value_store.a]", "unknown key 'file' for a 'sqlite' store", "allowed keys: type, path"],
    ),
    "path on memory": (
        '[key_value_store.a]\ntype = "memory"\npath = "a.db"\n',
        ["unknown key 'path' for a 'memory' store", "allowed keys: type"],
    ),
    "path type": ('[key_value_store.a]\ntype = "sqlite"\npath = 1\n', ["'path' must be a non-empty string"]),
    "path directory": ('[key_value_store.a]\ntype = "sqlite"\npath = "data/"\n', ["names a directory"]),
    "redis without url": ('[key_value_store.a]\ntype = "redis"\n', ["'url' is missing", "redis://"]),
    "redis bad url": (
        '[key_value_store.a]\ntype = "redis"\nurl = "localhost:6379"\n',
        ["'url' must be a string starting with redis:// or rediss://"],
    ),
    "empty label": ('[key_value_store.""]\ntype = "memory"\n', ["a store has an empty label"]),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_runtime_config_errors(tmp_path: Path, case: str) -> None:
    text, fragments = ERRORS[case]
    path = config(tmp_path, text)
    with pytest.raises(RuntimeConfigError) as caught:
        load_runtime_config(path, manifest_dir=tmp_path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(
        RuntimeConfigError, match=r"nope\.toml: no such file; create it, or fix --runtime-config-file"
    ):
        load_runtime_config(tmp_path / "nope.toml", manifest_dir=tmp_path)


def test_runtime_config_error_is_a_config_error() -> None:
    assert issubclass(RuntimeConfigError, ConfigError)
