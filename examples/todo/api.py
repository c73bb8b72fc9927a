"""The todo API: JSON items under `todo/<id>`, listed by prefix with paging, updated with CAS.

Routes (mounted at /todos/...):
  GET    /todos/?limit=N&after=ID   one page of items, oldest first, and the next `after`
  POST   /todos/                    create {"title": ...}; the id comes from an atomic counter
  PUT    /todos/<id>                merge fields into the item (a compare-and-swap update)
  DELETE /todos/<id>                remove it
"""

import json

from wasikv_sdk import http, key_value
from wasikv_sdk.errors import KeyValueError

PREFIX = "todo/"


def _json(status: int, body: object) -> http.Response:
    return http.Response(status, {"content-type": "application/json"}, json.dumps(body).encode())


class Http(http.Handler):
    def handle(self, request: http.Request) -> http.Response:
        item_id = request.path_info.strip("/")
        try:
            with key_value.open_default() as todos, key_value.open("counters") as counters:
                if request.method == "GET" and not item_id:
                    return self.list(todos, request)
                if request.method == "POST" and not item_id:
                    item = {"title": json.loads(request.body or b"{}").get("title", ""), "done": False}
                    item["id"] = f"{counters.increment('todo-ids'):08d}"
                    todos.set(PREFIX + item["id"], json.dumps(item).encode())
                    counters.increment("created")
                    return _json(201, item)
                if request.method == "PUT" and item_id:
                    return self.update(todos, item_id, json.loads(request.body or b"{}"))
                if request.method == "DELETE" and item_id:
                    todos.delete(PREFIX + item_id)
                    return http.Response(204)
        except KeyValueError as exc:
            return _json(503, {"error": str(exc)})
        return _json(405, {"error": f"{request.method} {request.path} is not supported"})

    def list(self, todos: key_value.Bucket, request: http.Request) -> http.Response:
        limit = int(request.query.get("limit", "10"))
        after = request.query.get("after", "")
        page: list[object] = []
        for key in todos.keys(PREFIX):
            if key[len(PREFIX) :] <= after:
                continue
            if len(page) == limit:
                return _json(200, {"items": page, "after": page[-1]["id"]})  # type: ignore[index]
            page.append(json.loads(todos.get(key) or b"null"))
        return _json(200, {"items": page, "after": None})

    def update(self, todos: key_value.Bucket, item_id: str, fields: dict[str, object]) -> http.Response:
        key = PREFIX + item_id
        if not todos.exists(key):
            return _json(404, {"error": f"no todo {item_id}"})

        def merge(old: bytes | None) -> bytes:
            return json.dumps({**json.loads(old or b"{}"), **fields, "id": item_id}).encode()

        return _json(200, json.loads(todos.update(key, merge)))
