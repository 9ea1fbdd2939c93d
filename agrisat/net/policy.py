"""How patient agrisat is with a remote server: :class:`RetryPolicy`, ``Retry-After``."""

from __future__ import annotations

import datetime as dt
import email.utils
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ..errors import ConfigError

__all__ = ["DEFAULT_POLICY", "RETRY_STATUSES", "RetryPolicy", "parse_retry_after"]

#: Transient answers worth another try. 500 is left out on purpose: STAC APIs answer 500 for
#: queries they cannot run (a deterministic failure, retrying only delays the error); add it to
#: ``RetryPolicy.retry_statuses`` for a server known to 500 transiently. 400, 401, 403, 404 and
#: 422 are permanent: the same request will get the same answer.
RETRY_STATUSES: tuple[int, ...] = (408, 425, 429, 502, 503, 504)


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
