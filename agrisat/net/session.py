"""Catalog JSON over http(s) with retries: a ``requests`` session and pystac(-client) I/O."""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import pystac
import requests
from pystac.stac_io import DefaultStacIO
from pystac_client.stac_api_io import StacApiIO

from ..errors import CatalogError
from .policy import DEFAULT_POLICY, RetryPolicy, parse_retry_after
from .redact import redact_text, redact_url

__all__ = ["RetryingSession", "RetryingStacApiIO", "RetryingStacIO", "fetch_json"]

log = logging.getLogger(__name__)

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
        where = f"{exc.msg} at character {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        raise CatalogError(
            f"{redact_url(url)} did not answer with valid JSON ({where or 'undecodable'}); "
            "the server or a proxy sent something else, retry later or check the URL"
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
        self.policy = policy  # before super().__init__, which calls update()
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
        kwargs["timeout"] = timeout or self.policy.timeout
        super().update(*args, **kwargs)

    def read_json(self, source: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Read a page as a JSON object; malformed JSON is a :class:`CatalogError`."""
        href = source.href if isinstance(source, pystac.Link) else str(source)
        return _loads(self.read_text(source, *args, **kwargs), href)
