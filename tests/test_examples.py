"""The examples, built from their sources and exercised as their READMEs describe."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from wasikv import create_app

from .support import ROOT, guest_wasm

HTTP_WORLD = "wasikv:app/http-trigger"
EXAMPLES = ROOT / "examples"


class Client:
    """A synchronous face on httpx's in-process ASGI transport."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(send())

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str) -> httpx.Response:
        return self.request("DELETE", path)


@pytest.fixture
def todo(tmp_path: Path) -> Client:
    for name in ("api", "report"):
        shutil.copy(guest_wasm("examples/todo", HTTP_WORLD, module=name), tmp_path / f"{name}.wasm")
    for name in ("wasikv.toml", "runtime-config.toml"):
        shutil.copy(EXAMPLES / "todo" / name, tmp_path / name)
    return Client(create_app(tmp_path / "wasikv.toml"))


def test_todo_create_page_update_delete(todo: Client) -> None:
    created = [todo.post("/todos/", json={"title": f"task {i}"}).json() for i in range(5)]
    assert [c["id"] for c in created] == [f"{i:08d}" for i in range(1, 6)]
    first = todo.get("/todos/?limit=2").json()
    assert [i["title"] for i in first["items"]] == ["task 0", "task 1"]
    second = todo.get(f"/todos/?limit=2&after={first['after']}").json()
    third = todo.get(f"/todos/?limit=2&after={second['after']}").json()
    assert [i["title"] for i in second["items"] + third["items"]] == ["task 2", "task 3", "task 4"]
    assert third["after"] is None
    updated = todo.put("/todos/00000002", json={"done": True}).json()
    assert updated == {"title": "task 1", "done": True, "id": "00000002"}
    assert todo.put("/todos/99999999", json={"done": True}).status_code == 404
    assert todo.delete("/todos/00000001").status_code == 204
    assert len(todo.get("/todos/?limit=10").json()["items"]) == 4


def test_todo_report_has_narrower_grants(todo: Client) -> None:
    todo.post("/todos/", json={"title": "x"})
    assert todo.get("/report").json() == {"created": 1, "todos_visible": False}


def test_embed_asgi_service_mounts_the_component(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(guest_wasm("examples/http-counter", HTTP_WORLD), tmp_path / "app.wasm")
    manifest = (EXAMPLES / "embed-asgi" / "wasikv.toml").read_text()
    (tmp_path / "wasikv.toml").write_text(manifest.replace("../http-counter/app.wasm", "app.wasm"))
    monkeypatch.setenv("WASIKV_MANIFEST", str(tmp_path / "wasikv.toml"))
    spec = importlib.util.spec_from_file_location("embed_service", EXAMPLES / "embed-asgi" / "service.py")
    assert spec is not None and spec.loader is not None
    service = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(service)
    client = Client(service.app)
    assert client.post("/wasm/counter").text == "1\n"
    assert client.post("/wasm/counter").text == "2\n"
    assert client.get("/status").json() == {"service": "ok", "counter": 2}
    assert client.get("/wasm/elsewhere").status_code == 404
    service.wasm.close()
