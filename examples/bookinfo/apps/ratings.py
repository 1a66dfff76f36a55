"""bookinfo ratings: the stars two reviewers gave the book."""

from http.server import BaseHTTPRequestHandler

from common import json_reply, serve


def ratings(request: BaseHTTPRequestHandler) -> tuple[int, str, bytes]:
    return json_reply(200, {"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}})


def health(request: BaseHTTPRequestHandler) -> tuple[int, str, bytes]:
    return json_reply(200, {"status": "Ratings is healthy"})


if __name__ == "__main__":
    serve("ratings", {"/ratings/": ratings, "/health": health})
