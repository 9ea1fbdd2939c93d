"""Crop names of a loan book: Chinese and English spellings onto the calendar vocabulary.

A Shandong bank's book is typed by its staff: ``冬小麦``, ``玉米``, ``小麦-玉米``, ``corn``. The
calendars (``agrisat/data/calendars.toml``) and the peer groups know ``winter_wheat``, ``maize``
and ``wheat_maize``; a crop spelled otherwise gets no calendar and no peers, silently. The
table here maps common spellings onto those codes, and the Chinese and English labels of
:data:`agrisat.i18n.tables.CROPS` too, so a ``--lang zh`` export's crop values read back as the
same crops. The table is plain data (this module is part of the book cache's key).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping

from ..i18n.tables import CROPS

__all__ = ["CROP_ALIASES", "canonical_crop", "crop_key", "warn_crops_without_calendar"]

logger = logging.getLogger(__name__)

# Separators between words or between the two crops of a rotation: ASCII and full-width dashes
# and slashes (NFKC turns full-width ones into ASCII), en/em dashes, the ideographic comma, +, &.
_CROP_SEP = re.compile(r"[\s\-/+&、—–~·]+")

#: Extra spellings (beyond the calendar codes and the i18n labels) -> calendar crop code.
#: Keys are written as people type them; they are compared after :func:`crop_key`.
_EXTRA: Mapping[str, tuple[str, ...]] = {
    "winter_wheat": ("小麦", "冬麦", "麦子", "冬小麦", "winter wheat"),
    "maize": ("corn", "夏玉米", "玉米", "玉蜀黍", "包谷", "苞米", "summer corn"),
    "wheat_maize": (
        "小麦玉米",
        "小麦-玉米",
        "小麦/玉米",
        "小麦玉米轮作",
        "小麦-玉米轮作",
        "麦玉轮作",
        "麦玉",
        "冬小麦-夏玉米",
        "冬小麦夏玉米",
        "冬小麦-夏玉米轮作",
        "冬小麦夏玉米轮作",
        "小麦玉米两熟",
        "wheat-corn",
        "wheat-maize rotation",
        "wheat-corn rotation",
        "maize-wheat",
        "corn-wheat",
    ),
    "rice": ("稻", "稻谷", "水稻", "paddy"),
    "cotton": ("棉", "棉花"),
}


def crop_key(text: str) -> str:
    """``" Winter-Wheat "`` -> ``"winter_wheat"``: NFKC, lower case, separators become ``_``."""
    folded = unicodedata.normalize("NFKC", text).lower()
    return _CROP_SEP.sub("_", folded).strip("_")


def _build() -> dict[str, str]:
    table: dict[str, str] = {}
    for code, spellings in _EXTRA.items():
        for s in spellings:
            table[crop_key(s)] = code
    for code, labels in CROPS.items():  # the export's own labels read back as their codes
        for label in labels.values():
            table[crop_key(label)] = code
    for code in (*CROPS, *_CALENDAR_CROPS):
        table.pop(code, None)  # a code is itself, whatever a label says
    return table


#: Crop names the built-in calendars define besides the i18n codes: they stay themselves (a
#: calendars file may give them seasons of their own).
_CALENDAR_CROPS = ("wheat", "summer_maize")

#: Normalised spelling -> calendar crop code.
CROP_ALIASES: Mapping[str, str] = _build()


def canonical_crop(key: str) -> str:
    """The calendar code of a normalised crop name (:func:`crop_key`), else the name itself."""
    return CROP_ALIASES.get(key, key)


def _printable(name: str) -> str:
    # a crop cell is book text: keep escape sequences and control characters out of the log
    return "".join(ch if ch.isprintable() else "?" for ch in name)[:40]


def warn_crops_without_calendar(
    crops: Iterable[str], calendars: Iterable[str], book: str, *, shown: int = 10
) -> int:
    """Log one WARNING naming the crops that have no calendar; returns how many farms have one.

    Crop names are not personal data; farm ids are deliberately not logged with them.
    """
    known = set(calendars)
    counts = Counter(c for c in crops if c not in known)
    n = sum(counts.values())
    if n:
        names = ", ".join(f"{_printable(c)} ({k})" for c, k in counts.most_common(shown))
        more = f" and {len(counts) - shown} more" if len(counts) > shown else ""
        logger.warning(
            "book %s: %d farm(s) have a crop with no crop calendar: %s%s; drought and "
            "no-planting checks skip them. Use a calendar crop name (%s) or add the crop "
            "to a calendars file",
            book,
            n,
            names,
            more,
            ", ".join(sorted(known)),
        )
    return n
