"""A tiny STAC API on 127.0.0.1 that replays two recorded Earth Search ``/search`` pages.

Roots (each a landing page of its own):

- ``/``: a working API; ``/search`` (GET or POST) answers page 1, whose ``next`` link is
  rewritten to point back here, then page 2 (its ``next`` link removed, so paging ends).
- ``/fail500/``: the landing page works, ``/fail500/search`` answers HTTP 500.
- ``/down/``: everything answers HTTP 500.
- ``/slow/``: ``/slow/search`` sleeps ``SLOW_SECONDS`` before answering.

Every request is recorded in :attr:`StacServer.requests` as (method, path, query, body).
"""

from __future__ import annotations

import copy
import json
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from .local_server import LocalServer

DATA = Path(__file__).parent / "data" / "stac"
SLOW_SECONDS = 3.0
CONFORMS_TO = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]


def _load(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


class StacServer(LocalServer):
    """Start with :meth:`start`, stop with :meth:`stop`; ``url`` is the working API root."""

    def __init__(self) -> None:
        self.page1 = _load("earthsearch_v1_search_filter_page1.json")
        self.page2 = _load("earthsearch_v1_search_filter_page2.json")
        # the token the recorded page 1 hands to the server to get page 2
        self.token = next(ln for ln in self.page1["links"] if ln["rel"] == "next")["body"]["next"]
        self.requests: list[tuple[str, str, dict[str, list[str]], dict[str, Any] | None]] = []
        super().__init__()

    @property
    def url(self) -> str:
        return self.base + "/"

    def search_requests(self, root: str = "/") -> list[tuple[str, dict[str, Any] | None]]:
        """(method, body) of the requests made to ``<root>search``."""
        with self._lock:
            return [(m, b) for m, p, _, b in self.requests if p == root + "search"]

    def landing(self, root: str) -> dict[str, Any]:
        base = self.base + root
        return {
            "type": "Catalog",
            "stac_version": "1.0.0",
            "id": "agrisat-test-api",
            "description": "Recorded Earth Search pages replayed for agrisat's tests",
            "conformsTo": CONFORMS_TO,
            "links": [
                {"rel": "self", "type": "application/json", "href": base},
                {"rel": "root", "type": "application/json", "href": base},
                {"rel": "conformance", "type": "application/json", "href": base + "conformance"},
                {"rel": "data", "type": "application/json", "href": base + "collections"},
                {
                    "rel": "search",
                    "type": "application/geo+json",
                    "href": base + "search",
                    "method": "GET",
                },
                {
                    "rel": "search",
                    "type": "application/geo+json",
                    "href": base + "search",
                    "method": "POST",
                },
            ],
        }

    def search_page(self, method: str, token: str | None) -> dict[str, Any]:
        if token == self.token:
            page = copy.deepcopy(self.page2)
            page["links"] = [ln for ln in page["links"] if ln["rel"] != "next"]
            return page
        page = copy.deepcopy(self.page1)
        for link in page["links"]:
            if link["rel"] == "next":
                if method == "POST":
                    link["href"] = self.base + "/search"
                else:
                    link.update(method="GET", href=f"{self.base}/search?next={quote(self.token)}")
                    link.pop("body", None)
        return page

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                body = None
                if method == "POST":
                    length = int(self.headers.get("Content-Length") or 0)
                    body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests.append((method, parts.path, query, body))
                path = parts.path
                root = "/"
                for prefix in ("/fail500/", "/down/", "/slow/"):
                    if path.startswith(prefix):
                        root, path = prefix, "/" + path[len(prefix) :]
                if root == "/down/":
                    return self._send(500, {"code": "InternalError", "description": "down"})
                if path == "/":
                    return self._send(200, server.landing(root))
                if path == "/conformance":
                    return self._send(200, {"conformsTo": CONFORMS_TO})
                if path == "/search":
                    if root == "/fail500/":
                        return self._send(500, {"code": "InternalError", "description": "boom"})
                    if root == "/slow/":
                        time.sleep(SLOW_SECONDS)
                    token = (body or {}).get("next") or (query.get("next") or [None])[0]
                    return self._send(200, server.search_page(method, token))
                return self._send(404, {"code": "NotFound", "description": path})

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        return Handler
