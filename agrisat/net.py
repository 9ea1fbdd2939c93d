"""Talking to public servers at night: bounded retries, timeouts and redaction.

Public STAC APIs and blob stores fail in the usual ways: 503 while they scale, 429 with a
``Retry-After`` when we are too eager, a connection that accepts and never answers, a body cut
short, a 404 for one asset, a gateway's HTML page where JSON was expected. One
:class:`RetryPolicy` describes how patient agrisat is, and is applied in two places:

- catalog JSON (pystac-client's :class:`~pystac_client.stac_api_io.StacApiIO` and pystac's
  static catalog reads) goes through :class:`RetryingSession`, a ``requests`` session that
  retries transient failures with exponential backoff and jitter, honours ``Retry-After``
  (capped), bounds every attempt with connect/read timeouts and every call with a deadline,
  and logs each retry at WARNING with the redacted URL;
- COG pixels go through GDAL's ``/vsicurl/``, configured by :func:`gdal_http_options`.

Nothing here logs or raises a URL's query string: signed URLs carry their token there.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pystac
import requests
from pystac.stac_io import DefaultStacIO
from pystac_client.stac_api_io import StacApiIO

from .errors import CatalogError, ConfigError

__all__ = [
    "DEFAULT_POLICY",
    "RETRY_STATUSES",
    "RedactingFilter",
    "RetryPolicy",
    "RetryingSession",
    "RetryingStacApiIO",
    "RetryingStacIO",
    "clear_gdal_http_cache",
    "fetch_json",
    "gdal_http_options",
    "install_log_redaction",
    "parse_retry_after",
    "redact_text",
    "redact_url",
]

log = logging.getLogger(__name__)

#: Transient answers worth another try. 500 is left out on purpose: STAC APIs answer 500 for
#: queries they cannot run (a deterministic failure, retrying only delays the error); add it to
#: ``RetryPolicy.retry_statuses`` for a server known to 500 transiently. 400, 401, 403, 404 and
#: 422 are permanent: the same request will get the same answer.
RETRY_STATUSES: tuple[int, ...] = (408, 425, 429, 502, 503, 504)

# a query string holding at least one key=value (signatures, tokens), with or without a host
_QUERY_RE = re.compile(r"\?[^\s'\"<>()]*=[^\s'\"<>()]*")
# user:password@ inside a URL in free text
_USERINFO_RE = re.compile(r"(?<=://)[^/\s@'\"]+@")


def redact_url(url: str) -> str:
    """Strip the query string, fragment and user info (signatures, tokens) from a URL.

    Anything that is not a URL (a local path) is returned unchanged.
    """
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def redact_text(text: str) -> str:
    """Redact every URL's query string and user info inside free text (messages, bodies)."""
    return _USERINFO_RE.sub("", _QUERY_RE.sub("", text))


@dataclass(frozen=True)
class RetryPolicy:
    """How patient agrisat is with a remote server (catalog JSON and, via GDAL, COG reads).

    Attributes
    ----------
    max_attempts
        Tries per request, the first included (1 disables retries).
    base_delay
        Wait before the first retry, in seconds; doubled at each further retry.
    max_delay
        Cap on one backoff wait, in seconds.
    jitter
        Share of each backoff wait drawn at random (0: none, 1: anywhere in [0, 2x]); spreads
        the retries of parallel readers so they do not hit a recovering server together.
    retry_after_max
        Cap on a server's ``Retry-After``, in seconds; a longer ask ends the retries (the
        scene or the run is retried next night instead of holding the night hostage).
    connect_timeout, read_timeout
        Seconds to open a connection / to wait for the next bytes of an answer (one attempt).
        ``read_timeout`` is also GDAL's limit for one whole range request.
    deadline
        Seconds one call may take with all its retries and waits; no new attempt starts past it.
    retry_statuses
        HTTP statuses retried (see :data:`RETRY_STATUSES`); any other error status is final.
    sleep
        Called with the seconds to wait between attempts (tests inject a recorder).
    rand
        Uniform [0, 1) source for the jitter (tests inject a constant).
    """

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    jitter: float = 0.5
    retry_after_max: float = 120.0
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    deadline: float = 300.0
    retry_statuses: tuple[int, ...] = RETRY_STATUSES
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)
    rand: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        checks = {
            "max_attempts": self.max_attempts >= 1,
            "base_delay": self.base_delay >= 0,
            "max_delay": self.max_delay >= 0,
            "jitter": 0 <= self.jitter <= 1,
            "retry_after_max": self.retry_after_max >= 0,
            "connect_timeout": self.connect_timeout > 0,
            "read_timeout": self.read_timeout > 0,
            "deadline": self.deadline > 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(
                f"invalid retry settings {bad}: attempts >= 1, delays and timeouts >= 0 "
                "(timeouts > 0), jitter within 0..1"
            )
        # a TOML list arrives as a list: keep the dataclass hashable
        object.__setattr__(self, "retry_statuses", tuple(int(s) for s in self.retry_statuses))

    @property
    def timeout(self) -> tuple[float, float]:
        """(connect, read) seconds, as ``requests`` takes them."""
        return (self.connect_timeout, self.read_timeout)

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first) absent Retry-After."""
        base = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        spread = base * self.jitter
        return max(0.0, min(self.max_delay, base - spread + 2 * spread * self.rand()))

    def with_deadline(self, seconds: float) -> RetryPolicy:
        """This policy with every call bounded by ``seconds`` (timeouts shortened to fit)."""
        return replace(
            self,
            deadline=seconds,
            connect_timeout=min(self.connect_timeout, seconds),
            read_timeout=min(self.read_timeout, seconds),
        )


#: used when nothing else is given: about five minutes of patience per request at most
DEFAULT_POLICY = RetryPolicy()


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds asked by a ``Retry-After`` header (delta-seconds or an HTTP date), or None.

    A date in the past gives 0; an unparseable value gives None (the caller backs off instead).
    """
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())


# errors worth another try: the server may never have seen the request, or the answer was lost
_TRANSIENT_ERRORS = (
    requests.ConnectionError,  # refused, reset, DNS hiccup, and ReadTimeout's cousin
    requests.Timeout,  # ConnectTimeout and ReadTimeout
    requests.exceptions.ChunkedEncodingError,  # body cut short
    requests.exceptions.ContentDecodingError,
)


class RetryingSession(requests.Session):
    """A ``requests`` session that retries transient failures as its :class:`RetryPolicy` says.

    Every request is retried (POST too: a STAC search is a read, repeating it is harmless).
    After the last attempt the last response is returned (the caller judges its status) or the
    last exception is raised. ``attempts`` counts every attempt made, for tests and metrics.
    """

    def __init__(self, policy: RetryPolicy = DEFAULT_POLICY) -> None:
        super().__init__()
        self.policy = policy
        self.attempts = 0

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """Send ``request``, retrying transient failures (see the class docstring)."""
        policy = self.policy
        url = redact_url(request.url or "")
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            self.attempts += 1
            remaining = policy.deadline - (time.monotonic() - started)
            kwargs["timeout"] = _attempt_timeout(kwargs.get("timeout"), policy, remaining)
            # the body is read inside send (stream=False), so a body cut short raises here
            kwargs["stream"] = False
            try:
                response = super().send(request, **kwargs)
            except _TRANSIENT_ERRORS as exc:
                wait = self._next_wait(attempt, None, started)
                if wait is None:
                    raise
                reason = _reason(exc)
            else:
                if response.status_code not in policy.retry_statuses:
                    return response
                asked = parse_retry_after(response.headers.get("Retry-After"))
                wait = self._next_wait(attempt, asked, started)
                if wait is None:
                    return response
                reason = f"HTTP {response.status_code}"
                response.close()
            log.warning(
                "%s %s: %s (attempt %d of %d); retrying in %.1f s",
                request.method,
                url,
                reason,
                attempt,
                policy.max_attempts,
                wait,
            )
            policy.sleep(wait)

    def _next_wait(self, attempt: int, asked: float | None, started: float) -> float | None:
        """Seconds to wait before the next attempt, or None when it is time to give up."""
        policy = self.policy
        if attempt >= policy.max_attempts:
            return None
        if asked is not None:
            if asked > policy.retry_after_max:
                log.warning(
                    "the server asks to retry in %.0f s, more than the %.0f s allowed; giving up",
                    asked,
                    policy.retry_after_max,
                )
                return None
            wait = asked
        else:
            wait = policy.backoff(attempt)
        if time.monotonic() - started + wait >= policy.deadline:
            return None
        return wait


def _attempt_timeout(given: Any, policy: RetryPolicy, remaining: float) -> tuple[float, float]:
    """The policy's (connect, read) timeouts, never past the caller's nor the deadline."""
    connect, read = policy.timeout
    if isinstance(given, int | float):
        connect, read = min(connect, given), min(read, given)
    elif isinstance(given, tuple) and len(given) == 2:
        connect = min(connect, given[0]) if given[0] else connect
        read = min(read, given[1]) if given[1] else read
    floor = 0.05  # a sliver of budget left still gets one short try rather than a zero timeout
    return (max(floor, min(connect, remaining)), max(floor, min(read, remaining)))


def _reason(exc: BaseException) -> str:
    # the class name says what happened; the message may carry the full URL (redacted anyway)
    text = redact_text(str(exc)).splitlines()[0][:160] if str(exc) else ""
    return f"{type(exc).__name__}" + (f" ({text})" if text else "")


def _loads(text: str, url: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise CatalogError(
            f"{redact_url(url)} did not answer with valid JSON ({exc.msg} at character "
            f"{exc.pos if isinstance(exc, json.JSONDecodeError) else '?'}); the server or a "
            "proxy sent something else, retry later or check the URL"
        ) from None
    if not isinstance(doc, dict):
        raise CatalogError(f"{redact_url(url)} is not a STAC JSON object")
    return doc


def fetch_json(url: str, *, policy: RetryPolicy = DEFAULT_POLICY) -> dict[str, Any]:
    """GET ``url`` as JSON with retries; :class:`CatalogError` for anything unusable.

    Parameters
    ----------
    url
        An http(s) URL.
    policy
        Retries and timeouts.

    Raises
    ------
    CatalogError
        Unreachable after the retries, an error status, or not a JSON object; the message
        names the redacted URL.
    """
    with RetryingSession(policy) as session:
        try:
            response = session.get(url)
        except requests.RequestException as exc:
            raise CatalogError(
                f"cannot reach the catalog {redact_url(url)} after {session.attempts} "
                f"attempt(s): {_reason(exc)}; check the URL and the network, or retry later"
            ) from None
    if response.status_code >= 400:
        raise CatalogError(
            f"the catalog {redact_url(url)} answered HTTP {response.status_code} after "
            f"{session.attempts} attempt(s); check the URL, or retry later if the server is down"
        )
    return _loads(response.text, url)


class RetryingStacIO(DefaultStacIO):
    """pystac I/O for static catalogs: http(s) reads go through a :class:`RetryingSession`.

    pystac's own reader has no timeout and no retry; a stalled server would hang the night.
    """

    def __init__(self, policy: RetryPolicy = DEFAULT_POLICY) -> None:
        super().__init__()
        self.session = RetryingSession(policy)

    def read_text_from_href(self, href: str) -> str:
        """Read a local file, or GET an http(s) URL with retries."""
        if urlsplit(href).scheme not in {"http", "https"}:
            return super().read_text_from_href(href)
        try:
            response = self.session.get(href, headers=self.headers or None)
        except requests.RequestException as exc:
            raise CatalogError(
                f"cannot read {redact_url(href)}: {_reason(exc)}; retry later"
            ) from None
        if response.status_code >= 400:
            raise CatalogError(
                f"{redact_url(href)} answered HTTP {response.status_code}; "
                "check the catalog, or retry later if the server is down"
            )
        return response.text

    def read_json(self, source: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Read ``source`` as a JSON object; malformed JSON is a :class:`CatalogError`."""
        return _loads(self.read_text(source, *args, **kwargs), str(source))


class RetryingStacApiIO(StacApiIO):
    """pystac-client I/O whose session is a :class:`RetryingSession` (urllib3 retries off)."""

    def __init__(self, policy: RetryPolicy = DEFAULT_POLICY, **kwargs: Any) -> None:
        kwargs.setdefault("timeout", policy.timeout)
        super().__init__(max_retries=None, **kwargs)
        old = self.session
        self.session = RetryingSession(policy)
        # StacApiIO.__init__ put headers and parameters on the session it made
        self.session.headers.update(old.headers)
        self.session.params.update(old.params)  # type: ignore[union-attr, arg-type]
        old.close()

    def update(self, *args: Any, timeout: Any = None, **kwargs: Any) -> None:
        """As :meth:`StacApiIO.update`; a missing ``timeout`` keeps the policy's."""
        super().update(*args, timeout=timeout or self.session.policy.timeout, **kwargs)  # type: ignore[attr-defined]

    def read_json(self, source: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Read a page as a JSON object; malformed JSON is a :class:`CatalogError`."""
        href = source.href if isinstance(source, pystac.Link) else str(source)
        return _loads(self.read_text(source, *args, **kwargs), href)


def gdal_http_options(policy: RetryPolicy = DEFAULT_POLICY) -> dict[str, Any]:
    """GDAL ``/vsicurl/`` retry and timeout options that follow ``policy`` (GDAL >= 3.10).

    GDAL retries a range request on the statuses of ``GDAL_HTTP_RETRY_CODES`` and on curl
    time-outs and connection resets, waiting ``GDAL_HTTP_RETRY_DELAY`` then about twice as long
    each time (with its own jitter); it does not read ``Retry-After``. A read still failing
    after that raises in rasterio, odc-stac (``fail_on_error``) passes it on, and the pipeline
    fails that scene alone.
    """
    return {
        # tries after the first one, as for catalog JSON
        "GDAL_HTTP_MAX_RETRY": max(0, policy.max_attempts - 1),
        # first wait in seconds; GDAL doubles it (plus jitter) at each retry
        "GDAL_HTTP_RETRY_DELAY": policy.base_delay,
        # the same transient statuses as catalog calls (GDAL's own list also has 500)
        "GDAL_HTTP_RETRY_CODES": ",".join(str(s) for s in policy.retry_statuses),
        # seconds to open a connection: a dead host is given up on quickly, then retried
        "GDAL_HTTP_CONNECTTIMEOUT": _seconds(policy.connect_timeout),
        # seconds for one whole range request (curl's total timeout): a server that accepts
        # and never answers, or trickles, cannot hold a dask thread longer than this
        "GDAL_HTTP_TIMEOUT": _seconds(policy.read_timeout),
    }


def _seconds(value: float) -> int:
    # GDAL parses these two as integers (curl's *_TIMEOUT options); never 0, which means "none"
    return max(1, round(value))


class RedactingFilter(logging.Filter):
    """Rewrite a record's message without URL query strings (signed tokens) or user info."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; always keep it."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a broken format string: leave it to logging
            return True
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


#: third-party loggers that put asset URLs (with their signature) into messages
_URL_LOGGERS: tuple[str, ...] = (
    "odc.loader._rio",  # "Failed to load <uri>:<band> due to rasterio error ..."
    "rasterio._env",  # GDAL's CPLE messages name the /vsicurl/ URL
    "rasterio._err",
    "rasterio._base",
    "rasterio._io",
    "rasterio.env",
    "pystac_client.stac_api_io",  # DEBUG: "GET <url> Headers: ..."
    "pystac.stac_io",
    "urllib3.connectionpool",
)


def install_log_redaction(names: Iterable[str] = _URL_LOGGERS) -> None:
    """Attach a :class:`RedactingFilter` to the loggers that may print signed URLs (idempotent).

    A logger's filters see only the records logged on that very logger, hence the explicit list.
    """
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


def clear_gdal_http_cache() -> bool:
    """Forget what GDAL's ``/vsicurl/`` remembers of remote files (in this process only).

    GDAL caches, per process and for its whole life, each URL's size and existence and the
    byte ranges it downloaded, failures included: after a 404 or a transfer cut short, reading
    the same URL again in the same process fails again *without a request*. Call this at the
    start of a run (on every dask worker: long-lived workers would otherwise never retry a
    scene) and before re-reading a failed scene. rasterio does not expose
    ``VSICurlClearCache``, so it is called through ctypes on the GDAL library already loaded
    by rasterio (found in ``/proc/self/maps``); returns False where that is not possible.
    """
    import ctypes

    import rasterio  # noqa: F401  (loads GDAL, so its library is mapped)

    path = _loaded_gdal_library()
    if path is None:
        log.debug("GDAL library not found among the loaded ones; /vsicurl/ cache not cleared")
        return False
    try:
        ctypes.CDLL(path).VSICurlClearCache()
    except (OSError, AttributeError) as exc:
        log.debug("cannot clear GDAL's /vsicurl/ cache: %s", exc)
        return False
    return True


def _loaded_gdal_library() -> str | None:
    # the very library rasterio uses (a wheel bundles its own copy); loading another GDAL into
    # the process would clear nothing and could do harm
    try:
        with open("/proc/self/maps", encoding="utf-8") as fh:
            for line in fh:
                path = line.rsplit(" ", 1)[-1].strip()
                if re.search(r"/libgdal[^/]*\.so", path):
                    return path
    except OSError:
        return None
    return None
