"""A misbehaving HTTP server on 127.0.0.1: serves a static STAC archive and fails on request.

``FaultServer(root)`` serves the files below ``root`` (a folder written by
:func:`agrisat.testing.make_archive`) the way a blob store does: ``GET`` and ``HEAD``, single
``Range: bytes=a-b`` requests answered ``206`` with ``Content-Range`` (GDAL reads COGs this way).
Relative hrefs in the catalog resolve against the server, so the archive needs no rewriting;
with ``asset_query`` every asset href of an item gets that query string appended, like a signed
URL (the server ignores queries).

``/api/`` is a small STAC API over the same items: a landing page and ``/api/search`` (GET or
POST, ``limit`` items a page, a ``next`` token), with absolute asset hrefs.

Faults are scheduled per path and consumed one per request, in order (``None`` = answer
normally); :meth:`FaultServer.always` makes one permanent until :meth:`FaultServer.clear`:

- ``Fault.status(503)``, ``Fault.status(429, retry_after="1")``: an error answer;
- ``Fault.stall(seconds)``: accept, read the request, answer nothing for ``seconds``, close;
- ``Fault.cut(0.6)``: announce the whole body, send 60 % of it, close (a dropped transfer);
- ``Fault.short_file(0.6)``: serve the file as if only its first 60 % existed (corrupt object);
- ``Fault.malformed()``: ``200`` with a JSON content type and a body that is not JSON.

Every request is recorded in :attr:`FaultServer.hits`.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .local_server import LocalServer

_RANGE_RE = re.compile(r"^bytes=(\d+)-(\d*)$")
CONFORMS_TO = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/item-search",
]


@dataclass(frozen=True)
class Fault:
    """One misbehaviour; build with the class methods."""

    kind: str
    code: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    fraction: float = 1.0

    @classmethod
    def status(cls, code: int, *, retry_after: str | None = None) -> Fault:
        headers = (("Retry-After", retry_after),) if retry_after is not None else ()
        return cls("status", code=code, headers=headers)

    @classmethod
    def stall(cls, seconds: float) -> Fault:
        return cls("stall", seconds=seconds)

    @classmethod
    def cut(cls, fraction: float) -> Fault:
        return cls("cut", fraction=fraction)

    @classmethod
    def short_file(cls, fraction: float) -> Fault:
        return cls("short_file", fraction=fraction)

    @classmethod
    def malformed(cls) -> Fault:
        return cls("malformed")


@dataclass(frozen=True)
class Hit:
    """One request as the server saw it."""

    method: str
    path: str
    query: str
    at: float
    outcome: str
    range: str | None = None


@dataclass
class _Schedule:
    pending: list[Fault | None] = field(default_factory=list)
    always: Fault | None = None


class FaultServer(LocalServer):
    """Start with :meth:`start` (or as a context manager); ``base`` is ``http://127.0.0.1:port``."""

    def __init__(self, root: str | Path, *, asset_query: str | None = None) -> None:
        self.root = Path(root).resolve()
        self.asset_query = asset_query
        self.hits: list[Hit] = []
        self._schedules: dict[str, _Schedule] = defaultdict(_Schedule)
        super().__init__()

    # -- control ---------------------------------------------------------------------------------

    def url(self, path: str | Path) -> str:
        """URL of ``path`` (absolute under ``root``, or relative to it)."""
        if Path(path).is_absolute():
            return f"{self.base}/{Path(path).resolve().relative_to(self.root).as_posix()}"
        return f"{self.base}/{str(path).lstrip('/')}"

    def path_of(self, path: str | Path) -> str:
        """The request path the server sees for ``path`` (as :meth:`url`, without the host)."""
        return urlsplit(self.url(path)).path

    def schedule(self, path: str | Path, *faults: Fault | None) -> None:
        """The next requests to ``path`` meet ``faults`` in order (None: a normal answer)."""
        with self._lock:
            self._schedules[self.path_of(path)].pending.extend(faults)

    def always(self, path: str | Path, fault: Fault) -> None:
        """Every request to ``path`` meets ``fault`` until :meth:`clear`."""
        with self._lock:
            self._schedules[self.path_of(path)].always = fault

    def clear(self) -> None:
        """Forget every scheduled fault."""
        with self._lock:
            self._schedules.clear()

    def hits_for(self, path: str | Path) -> list[Hit]:
        wanted = self.path_of(path)
        with self._lock:
            return [h for h in self.hits if h.path == wanted]

    # -- content ---------------------------------------------------------------------------------

    def _next_fault(self, path: str) -> Fault | None:
        with self._lock:
            sched = self._schedules.get(path)
            if sched is None:
                return None
            if sched.always is not None:
                return sched.always
            return sched.pending.pop(0) if sched.pending else None

    def _record(self, hit: Hit) -> None:
        with self._lock:
            self.hits.append(hit)

    def _items(self) -> list[dict[str, Any]]:
        """Every item of the archive with absolute (server) asset hrefs, sorted by id."""
        items = []
        for path in sorted(self.root.rglob("*.json")):
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("type") != "Feature":
                continue
            base = self.url(path.parent)
            for asset in doc.get("assets", {}).values():
                href = asset["href"]
                if not href.startswith("http"):
                    href = f"{base}/{href.removeprefix('./')}"
                asset["href"] = self._sign(href)
            doc["links"] = [ln for ln in doc.get("links", []) if ln.get("rel") == "self"]
            for link in doc["links"]:
                link["href"] = self.url(path)
            items.append(doc)
        return sorted(items, key=lambda d: d["id"])

    def _sign(self, href: str) -> str:
        return f"{href}?{self.asset_query}" if self.asset_query else href

    def _file_body(self, path: Path) -> bytes:
        data = path.read_bytes()
        if path.suffix != ".json" or not self.asset_query:
            return data
        doc = json.loads(data)
        base = self.url(path.parent)
        for asset in doc.get("assets", {}).values():
            # absolute, like a signed URL: pystac drops the query of a relative href when it
            # rebases the item on its self link
            href = asset["href"]
            if not href.startswith("http"):
                href = f"{base}/{href.removeprefix('./')}"
            asset["href"] = self._sign(href)
        return json.dumps(doc).encode()

    def landing(self) -> dict[str, Any]:
        api = self.base + "/api/"
        return {
            "type": "Catalog",
            "stac_version": "1.0.0",
            "id": "fault-api",
            "description": "agrisat fault-injection STAC API",
            "conformsTo": CONFORMS_TO,
            "links": [
                {"rel": "self", "type": "application/json", "href": api},
                {"rel": "root", "type": "application/json", "href": api},
                {"rel": "search", "type": "application/geo+json", "href": api + "search"},
                {
                    "rel": "search",
                    "type": "application/geo+json",
                    "href": api + "search",
                    "method": "POST",
                },
            ],
        }

    def search_page(self, offset: int, limit: int, method: str) -> dict[str, Any]:
        items = self._items()
        page = items[offset : offset + limit]
        links: list[dict[str, Any]] = []
        if offset + limit < len(items):
            nxt = str(offset + limit)
            href = self.base + "/api/search"
            if method == "POST":
                links.append(
                    {
                        "rel": "next",
                        "href": href,
                        "method": "POST",
                        "body": {"next": nxt},
                        "merge": True,
                    }
                )
            else:
                links.append(
                    {"rel": "next", "href": f"{href}?limit={limit}&next={nxt}", "method": "GET"}
                )
        return {"type": "FeatureCollection", "features": page, "links": links}

    # -- HTTP ------------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def _hit(self, outcome: str) -> None:
                parts = urlsplit(self.path)
                server._record(
                    Hit(
                        self.command,
                        parts.path,
                        parts.query,
                        time.monotonic(),
                        outcome,
                        self.headers.get("Range"),
                    )
                )

            def _answer(
                self,
                status: int,
                body: bytes,
                *,
                content_type: str = "application/octet-stream",
                headers: dict[str, str] | None = None,
                send: int | None = None,
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body if send is None else body[:send])
                if send is not None:  # drop the connection mid-body
                    self.wfile.flush()
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)

            def _json(self, status: int, doc: Any, **kw: Any) -> None:
                self._answer(
                    status, json.dumps(doc).encode(), content_type="application/json", **kw
                )

            def _content(self, method: str) -> tuple[int, bytes, str, dict[str, str]] | None:
                """(status, body, content type, headers) of a normal answer; None: 404."""
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                if parts.path in ("/api", "/api/"):
                    return 200, json.dumps(server.landing()).encode(), "application/json", {}
                if parts.path == "/api/search":
                    body: dict[str, Any] = {}
                    if method == "POST":
                        length = int(self.headers.get("Content-Length") or 0)
                        body = json.loads(self.rfile.read(length) or b"{}")
                    limit = int(body.get("limit") or (query.get("limit") or ["100"])[0])
                    offset = int(body.get("next") or (query.get("next") or ["0"])[0])
                    page = server.search_page(offset, limit, method)
                    return 200, json.dumps(page).encode(), "application/geo+json", {}
                target = (server.root / parts.path.lstrip("/")).resolve()
                if not target.is_file() or server.root not in target.parents:
                    return None
                kind = "application/json" if target.suffix == ".json" else "image/tiff"
                return 200, server._file_body(target), kind, {}

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                fault = server._next_fault(parts.path)
                if fault is not None and fault.kind == "stall":
                    self._hit("stall")
                    time.sleep(fault.seconds)  # bounded: the handler thread then ends
                    self.close_connection = True
                    return
                if fault is not None and fault.kind == "status":
                    self._hit(str(fault.code))
                    return self._json(
                        fault.code,
                        {"code": fault.code, "description": "injected fault"},
                        headers=dict(fault.headers),
                    )
                content = self._content(self.command)
                if content is None:
                    self._hit("404")
                    return self._json(404, {"code": "NotFound", "description": parts.path})
                status, body, kind, headers = content
                if fault is not None and fault.kind == "malformed":
                    self._hit("malformed")
                    junk = b"<html><body>502 Bad Gateway</body></html>"
                    return self._answer(200, junk, content_type=kind)
                if fault is not None and fault.kind == "short_file":
                    body = body[: int(len(body) * fault.fraction)]
                start, end, ranged = 0, len(body) - 1, False
                match = _RANGE_RE.match(self.headers.get("Range") or "")
                if match:
                    start = int(match.group(1))
                    end = min(int(match.group(2) or end), len(body) - 1)
                    if start >= len(body):
                        self._hit("416")
                        return self._answer(
                            416, b"", headers={"Content-Range": f"bytes */{len(body)}"}
                        )
                    ranged = True
                chunk = body[start : end + 1]
                if ranged:
                    status = 206
                    headers = {**headers, "Content-Range": f"bytes {start}-{end}/{len(body)}"}
                send = None
                outcome = str(status)
                if fault is not None and fault.kind == "cut":
                    send = int(len(chunk) * fault.fraction)
                    outcome = "cut"
                elif fault is not None and fault.kind == "short_file":
                    outcome = f"{status} short"
                self._hit(outcome)
                self._answer(status, chunk, content_type=kind, headers=headers, send=send)

            def do_GET(self) -> None:
                self._handle()

            def do_HEAD(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

        return Handler
