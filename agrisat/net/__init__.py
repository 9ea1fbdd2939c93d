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

from .gdal import clear_gdal_http_cache, gdal_http_options
from .policy import DEFAULT_POLICY, RETRY_STATUSES, RetryPolicy, parse_retry_after
from .redact import RedactingFilter, install_log_redaction, redact_text, redact_url
from .session import RetryingSession, RetryingStacApiIO, RetryingStacIO, fetch_json

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
