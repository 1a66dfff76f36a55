"""bookinfo reviews: v1 without stars; v2 (black stars) and v3 (red stars) ask ratings."""

from http.server import BaseHTTPRequestHandler

from common import VERSION, call, forwarded, json_reply, serve

STAR_COLOR = {"v2": "black", "v3": "red"}.get(VERSION)
# Upstream's reviews give up on ratings after 10 s (Istio's fault-injection task relies on
# this: a 7 s delay on ratings is within it).
RATINGS_TIMEOUT = 10.0
TEXTS = {
    "Reviewer1": "An extremely entertaining play by Shakespeare. The slapstick humour is "
                 "refreshing!",
    "Reviewer2": "Absolutely fun and entertaining. The play lacks thematic depth when "
                 "compared to other plays by Shakespeare.",
}


def reviews(request: BaseHTTPRequestHandler) -> tuple[int, str, bytes]:
    product = request.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    stars: dict[str, int] | None = None
    if STAR_COLOR:
        status, body = call(f"http://ratings:9080/ratings/{product}", forwarded(request),
                            RATINGS_TIMEOUT)
        if status == 200 and isinstance(body, dict):
            stars = body.get("ratings")
    entries = []
    for reviewer, text in TEXTS.items():
        entry: dict[str, object] = {"reviewer": reviewer, "text": text}
        if STAR_COLOR and stars is not None:
            entry["rating"] = {"stars": stars.get(reviewer, 0), "color": STAR_COLOR}
        elif STAR_COLOR:
            entry["rating"] = {"error": "Ratings service is currently unavailable"}
        entries.append(entry)
    return json_reply(200, {"id": product, "version": VERSION, "reviews": entries})


def health(request: BaseHTTPRequestHandler) -> tuple[int, str, bytes]:
    return json_reply(200, {"status": "Reviews is healthy"})


if __name__ == "__main__":
    serve("reviews", {"/reviews/": reviews, "/health": health})
