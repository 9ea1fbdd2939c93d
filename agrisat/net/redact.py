"""Keep signed URLs' tokens out of logs and messages: strip query strings and user info."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

__all__ = ["RedactingFilter", "install_log_redaction", "redact_text", "redact_url"]

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
