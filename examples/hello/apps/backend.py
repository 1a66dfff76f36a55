"""The hello backend: answers with which instance served the request.

Tests can ask it to misbehave with query parameters: `fail=P` answers 503 with probability
P, `fail_instance=NAME` answers 503 when this is instance NAME, `sleep=S` waits S seconds
before answering.
"""

import json
import os
import random
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PORT = 9090


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        instance = os.environ.get("HEDDLE_WORKLOAD", "backend")
        query = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
        time.sleep(min(float(query.get("sleep", 0)), 30))
        failing = (random.random() < float(query.get("fail", 0))
                   or query.get("fail_instance") == instance)
        body = json.dumps({
            "service": "backend",
            "instance": instance,
            "version": os.environ.get("VERSION", ""),
            "request_id": self.headers.get("x-request-id", ""),
            # The request target and Host as they arrived, after the sidecars' normalization.
            "path": self.path,
            "host": self.headers.get("host", ""),
            # Set by the sidecar on mTLS connections: who called, by SPIFFE id.
            "peer": self.headers.get("x-forwarded-client-cert", ""),
            # Claims the sidecar copied from a verified JWT (outputClaimToHeaders).
            "jwt_headers": {k.lower(): v for k, v in self.headers.items()
                            if k.lower().startswith("x-jwt")},
            "has_authorization": "authorization" in self.headers,
        }).encode()
        self.send_response(503 if failing else 200)
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
