"""A migrated service of the shop (orders, catalog): answers every GET with its name and
the path it was asked for, as JSON, on $HEDDLE_APP_ADDRESS:$PORT (8080). `SERVICE` names
it."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("PORT", "8080"))
SERVICE = os.environ.get("SERVICE", "service")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the sidecar reuses its connections
    disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart

    def do_GET(self) -> None:
        body = (json.dumps({"served_by": SERVICE, "path": self.path}) + "\n").encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        pass  # the sidecar's access log has every request


if __name__ == "__main__":
    address = os.environ.get("HEDDLE_APP_ADDRESS", "127.0.0.1")
    print(f"{SERVICE} listening on {address}:{PORT}", flush=True)
    ThreadingHTTPServer((address, PORT), Handler).serve_forever()
