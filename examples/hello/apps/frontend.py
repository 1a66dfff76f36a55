"""The hello frontend: calls the backend through its sidecar and returns both answers."""

import json
import os
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = 8080
BACKEND = "http://backend:9090/"
# Like bookinfo's apps, pass the request id on so one request can be followed hop by hop.
PROPAGATED = ("x-request-id", "x-b3-traceid", "x-b3-spanid", "traceparent")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        headers = {h: self.headers[h] for h in PROPAGATED if self.headers.get(h)}
        # urllib sends this through $http_proxy, which the agent points at the sidecar.
        request = urllib.request.Request(BACKEND, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                backend = json.loads(response.read())
                status = 200
        except OSError as err:
            backend, status = {"error": str(err)}, 502
        body = json.dumps({"service": "frontend", "backend": backend}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        print(f"{self.address_string()} {fmt % args}", flush=True)


if __name__ == "__main__":
    address = os.environ.get("HEDDLE_APP_ADDRESS", "127.0.0.1")
    print(f"frontend listening on {address}:{PORT}", flush=True)
    ThreadingHTTPServer((address, PORT), Handler).serve_forever()
