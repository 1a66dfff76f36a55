"""A TCP echo server: the hello mesh's plain-TCP service, reached through CONNECT."""

import os
import socketserver

PORT = 9000


class Echo(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(b"echo: " + line)


if __name__ == "__main__":
    address = os.environ.get("HEDDLE_APP_ADDRESS", "127.0.0.1")
    print(f"echo listening on {address}:{PORT}", flush=True)
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer((address, PORT), Echo).serve_forever()
