"""bookinfo productpage: the page, from details and reviews. `/productpage` is HTML as
upstream; `/productpage?format=json` says the same in a form tests can read."""

from __future__ import annotations

import html
from http.server import BaseHTTPRequestHandler
from typing import Any

from common import call, forwarded, json_reply, serve

DETAILS_ERROR = "Sorry, product details are currently unavailable for this book."
REVIEWS_ERROR = "Sorry, product reviews are currently unavailable for this book."


def product_details(headers: dict[str, str]) -> dict[str, Any]:
    status, body = call("http://details:9080/details/0", headers, timeout=3.0)
    return body if status == 200 and isinstance(body, dict) else {"error": DETAILS_ERROR}


def product_reviews(headers: dict[str, str]) -> dict[str, Any]:
    # As upstream: a 3 s timeout and one retry, "for illustration in the fault injection
    # task", so a call to reviews fails after about 6 s.
    for _ in range(2):
        status, body = call("http://reviews:9080/reviews/0", headers, timeout=3.0)
        if status == 200 and isinstance(body, dict):
            return body
    return {"error": REVIEWS_ERROR}


def summary(details: dict[str, Any], reviews: dict[str, Any]) -> dict[str, Any]:
    ratings = [r.get("rating") for r in reviews.get("reviews", [])]
    colors = {r.get("color") for r in ratings if isinstance(r, dict) and "color" in r}
    return {
        "details_version": details.get("version"),
        "details_error": "error" in details,
        "reviews_version": reviews.get("version"),
        "reviews_error": "error" in reviews,
        "stars": colors.pop() if len(colors) == 1 else "none",
        "ratings_error": any(isinstance(r, dict) and "error" in r for r in ratings),
        "details": details,
        "reviews": reviews,
    }


def page(user: str, details: dict[str, Any], reviews: dict[str, Any]) -> str:
    rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>"
                   for k, v in details.items())
    parts = [f"<h4>{html.escape(details['error'])}</h4>" if "error" in details
             else f"<dl>{rows}</dl>"]
    if "error" in reviews:
        parts.append(f"<h4>{html.escape(reviews['error'])}</h4>")
    for review in reviews.get("reviews", []):
        rating = review.get("rating") or {}
        if "error" in rating:
            stars = f'<p><font color="red">{html.escape(rating["error"])}</font></p>'
        elif rating:
            stars = (f'<font color="{rating["color"]}">' + "&#9733;" * rating["stars"]
                     + "&#9734;" * (5 - rating["stars"]) + "</font>")
        else:
            stars = ""
        parts.append(f"<blockquote><p>{html.escape(review['text'])}</p>"
                     f"<small>{html.escape(review['reviewer'])}</small>{stars}</blockquote>")
    who = f"<p>Signed in as {html.escape(user)}</p>" if user else ""
    return ("<!DOCTYPE html><html><head><title>Simple Bookstore App</title></head><body>"
            f"<h2>The Comedy of Errors</h2>{who}{''.join(parts)}</body></html>\n")


def productpage(request: BaseHTTPRequestHandler) -> tuple[int, str, bytes]:
    headers = forwarded(request)
    details, reviews = product_details(headers), product_reviews(headers)
    if "format=json" in request.path.partition("?")[2]:
        return json_reply(200, summary(details, reviews))
    return 200, "text/html", page(headers.get("end-user", ""), details, reviews).encode()


def health(request: BaseHTTPRequestHandler) -> tuple[int, str, bytes]:
    return json_reply(200, {"status": "Product page is healthy"})


if __name__ == "__main__":
    serve("productpage", {"/productpage": productpage, "/health": health})
