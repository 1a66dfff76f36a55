"""bookinfo details: the book's details. v2 stands in for upstream's Google Books lookup."""

from http.server import BaseHTTPRequestHandler

from common import VERSION, json_reply, serve

BOOK = {
    "id": 0, "author": "William Shakespeare", "year": 1595, "type": "paperback",
    "pages": 200, "publisher": "PublisherA", "language": "English",
    "ISBN-10": "1234567890", "ISBN-13": "123-1234567890",
}
if VERSION == "v2":
    BOOK = {**BOOK, "type": "hardcover", "publisher": "PublisherB (Google Books)"}


def details(request: BaseHTTPRequestHandler) -> tuple[int, str, bytes]:
    return json_reply(200, {**BOOK, "version": VERSION})


def health(request: BaseHTTPRequestHandler) -> tuple[int, str, bytes]:
    return json_reply(200, {"status": "Details is healthy"})


if __name__ == "__main__":
    serve("details", {"/details/": details, "/health": health})
