"""The hello backend: answers with which instance served the request."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = 9090


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({
            "service": "backend",
            "instance": os.environ.get("HEDDLE_WORKLOAD", "backend"),
            "version": os.environ.get("VERSION", ""),
            "request_id": self.headers.get("x-request-id", ""),
            # Set by the sidecar on mTLS connections: who called, by SPIFFE id.
            "peer": self.headers.get("x-forwarded-client-cert", ""),
            # Claims the sidecar copied from a verified JWT (outputClaimToHeaders).
            "jwt_headers": {k.lower(): v for k, v in self.headers.items()
                            if k.lower().startswith("x-jwt")},
            "has_authorization": "authorization" in self.headers,
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, fmt: str, *args: object) -> None:
        print(f"{self.address_string()} {fmt % args}", flush=True)


if __name__ == "__main__":
    address = os.environ.get("HEDDLE_APP_ADDRESS", "127.0.0.1")
    print(f"backend listening on {address}:{PORT}", flush=True)
    ThreadingHTTPServer((address, PORT), Handler).serve_forever()
