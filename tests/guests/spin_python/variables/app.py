"""A Spin HTTP app (spin-sdk 3.4.1) reading Spin variables: `GET /NAME` answers the value of
variable NAME (404 when undefined, 400 for an invalid name)."""

from spin_sdk import http, variables
from spin_sdk.http import Request, Response
from spin_sdk.wit.imports.variables import Error_InvalidName, Error_Undefined
from spin_sdk.wit.types import Err


def text(status: int, body: str) -> Response:
    return Response(status, {"content-type": "text/plain"}, (body + "\n").encode())


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        name = request.uri.split("?", 1)[0][1:]
        try:
            return text(200, variables.get(name))
        except Err as e:
            if isinstance(e.value, Error_Undefined):
                return text(404, f"undefined: {e.value.value}")
            if isinstance(e.value, Error_InvalidName):
                return text(400, f"invalid name: {e.value.value}")
            raise
