"""{{name}}: an HTTP component; POST /counter increments a counter, GET /counter reads it."""

from wasikv_sdk import http, key_value


class Counter(http.Handler):
    def handle(self, request: http.Request) -> http.Response:
        with key_value.open_default() as bucket:
            if request.method == "POST":
                count = bucket.increment("counter")
            elif request.method == "GET":
                count = int(bucket.get("counter") or b"0")
            else:
                return http.Response(405, {"allow": "GET, POST"}, b"method not allowed\n")
        return http.Response(200, {"content-type": "text/plain"}, f"{count}\n".encode())


# The class each world calls (wasikv.toml's build command picks the world):
# wasikv:app/proxy, a standard wasi:http component that `spin up` serves too;
IncomingHandler = http.incoming_handler(Counter)
# wasikv:app/http-trigger, wasikv's own, which costs less per request but runs on wasikv only.
Http = Counter
