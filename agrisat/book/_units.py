"""The unit an exposure column's header names: ``风险敞口（万元）`` holds ten-thousands of yuan.

Chinese loan books often keep amounts in 万元 (10,000 yuan) and say so only in the header.
Read as yuan, such a book's exposure would be 10,000 times too small and every figure of the
roll-up wrong without an error, so the header's unit is recognised and applied. A number
written with the scale multiplies it (``10k``, ``10,000 yuan``, ``x1000``, ``1e4``); a part
that names a scale but also words this module cannot read is refused rather than guessed.
"""

from __future__ import annotations

import math
import re
import unicodedata

from ..errors import BookError

__all__ = ["amount_unit", "strip_unit"]

#: Words that scale an amount (NFKC, lower-case), longest Chinese first: 百万 is not 万.
_CJK_SCALES: tuple[tuple[str, float], ...] = (
    ("千万元", 1e7),
    ("千万", 1e7),
    ("亿元", 1e8),
    ("亿", 1e8),
    ("百万元", 1e6),
    ("百万", 1e6),
    ("万元", 1e4),
    ("万", 1e4),
    ("千元", 1e3),
    ("千", 1e3),
)
_WORD_SCALES: dict[str, float] = {
    "k": 1e3,
    "000": 1e3,  # CNY '000
    "thousand": 1e3,
    "thousands": 1e3,
    "wan": 1e4,
    "m": 1e6,
    "mm": 1e6,  # finance shorthand for a million, not millimetres
    "mn": 1e6,
    "mio": 1e6,
    "000000": 1e6,
    "million": 1e6,
    "millions": 1e6,
    "bn": 1e9,
    "billion": 1e9,
    "billions": 1e9,
}
#: Number words multiply the scale they stand before (``ten thousand``, 十万).
_NUMBER_WORDS: dict[str, float] = {"ten": 10.0, "hundred": 100.0, "十": 10.0}
#: Currency words: a unit of one (they say what the amounts are in, not a multiple).
_CNY_WORDS: frozenset[str] = frozenset({"yuan", "cny", "rmb", "元", "人民币"})
_CURRENCY_WORDS: frozenset[str] = _CNY_WORDS | {"usd", "eur", "hkd"}
#: Words that may stand beside a unit without changing it (``in thousands``, ``单位:万元``).
_FILLER_WORDS: frozenset[str] = frozenset(
    {"in", "of", "per", "unit", "units", "amount", "amounts", "the", "x", "s", "单位", "金额"}
)
_BRACKETS = re.compile(r"[(\[（【](.*?)[)\]）】]")
_TOKENS = re.compile(
    r"(?P<num>\d{1,3}(?:,\d{3})+(?!\d)|\d+(?:\.\d+)?(?:e[+-]?\d+|\^\d+)?)"
    r"|(?P<word>[a-z]+)|(?P<cjk>[\u3400-\u9fff]+)"
)
_TAIL = re.compile(r"[\W_]+")
#: ``10⁴`` must not become ``104`` under NFKC: superscripts are read as a power first.
_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")
_POWER = re.compile(r"([⁰¹²³⁴⁵⁶⁷⁸⁹]+)")


def _normal(text: object) -> str:
    raw = _POWER.sub(lambda m: "^" + m.group(1).translate(_SUPERSCRIPTS), str(text))
    return unicodedata.normalize("NFKC", raw).strip().lower()


def _number(text: str) -> float:
    if "^" in text:
        base, power = text.split("^")
        return float(base) ** int(power)
    return float(text.replace(",", ""))


def _is_power_of_ten(value: float) -> bool:
    return value >= 1 and math.isclose(10 ** round(math.log10(value)), value)


class _Unreadable(ValueError):
    """A part names a scale beside something that cannot be read as part of it."""


class _Several(ValueError):
    """A part names two scale words (``千元 or 万元``); the message lists them."""


def _part_scale(part: str) -> tuple[float, str] | None:
    """``(multiple, label)`` named by one bracketed part or header tail, else None (no unit).
    ``_Unreadable``: a scale beside words it cannot read; ``_Several``: two scale words."""
    scales: list[tuple[str, float]] = []
    rest = part
    for word, scale in _CJK_SCALES:  # longest first: 百万元 is not also 万元
        if word in rest:
            scales.append((word, scale))
            rest = rest.replace(word, " ")
    numbers: list[float] = []
    unknown: list[str] = []
    for m in _TOKENS.finditer(rest):
        token = m.group()
        if token in _WORD_SCALES:
            scales.append((token, _WORD_SCALES[token]))
        elif m.group("num"):
            numbers.append(_number(token))
        elif token in _NUMBER_WORDS:
            numbers.append(_NUMBER_WORDS[token])
        elif token not in _CURRENCY_WORDS and token not in _FILLER_WORDS:
            unknown.append(token)
    if len(scales) > 1:
        raise _Several(", ".join(w for w, _ in scales))
    if not scales and (not numbers or not all(_is_power_of_ten(n) for n in numbers)):
        return None  # no scale named (``exposure (USD)``), or a year (``exposure (2024)``)
    if unknown or not all(_is_power_of_ten(n) for n in numbers):
        raise _Unreadable(part)
    multiple = math.prod(numbers) * (scales[0][1] if scales else 1.0)
    return multiple, part.strip()


def _unit_parts(header: object) -> tuple[list[str], str | None]:
    """The header's bracketed parts, and the last word after a separator (``exposure_k``,
    ``贷款余额/万元``) if there is one."""
    text = _normal(header)
    inside = [t.strip() for t in _BRACKETS.findall(text)]
    parts = [p for p in _TAIL.split(_BRACKETS.sub(" ", text)) if p]
    return inside, parts[-1] if len(parts) > 1 else None


def _tail_scale(word: str) -> float | None:
    """The multiple a header's last word names when it names a scale word (``k``, ``10k``,
    ``万元``); bare numbers (``exposure_2024``) are no unit there."""
    try:
        found = _part_scale(word)
    except ValueError:
        return None
    named = any(w in word for w, _ in _CJK_SCALES) or any(
        m.group() in _WORD_SCALES for m in _TOKENS.finditer(word)
    )
    return found[0] if found is not None and named else None


def strip_unit(name: str) -> str:
    """``name`` (already normalised by ``normalise_name``) without a trailing unit word or a
    bracketed part: ``风险敞口_万元`` → ``风险敞口``, ``exposure_k`` → ``exposure``; else
    ``name`` unchanged."""
    parts = name.split("_")
    if len(parts) > 1 and (parts[-1] in _CNY_WORDS or _tail_scale(_normal(parts[-1]))):
        return "_".join(parts[:-1])
    return name


def amount_unit(header: object, *, book: str = "") -> tuple[float, str | None]:
    """The multiple of the currency unit that the amounts under ``header`` are written in.

    Returns ``(scale, unit)``: ``(1e4, "万元")`` for ``风险敞口（万元）``, ``(1e4, "10k cny")``
    for ``exposure (10k CNY)``, ``(1e3, "k")`` for ``exposure_k``, ``(1.0, None)`` when the
    header names no scale (plain yuan, a currency, or a year such as ``exposure (2024)``).

    Raises
    ------
    BookError
        When the header names two different scales (``exposure (千元, 万元)``), or a scale
        beside words that cannot be read (``exposure (10k per hectare)``): nobody can tell
        what the amounts are in.
    """
    rename = "rename it to name one unit (e.g. 风险敞口（万元）, exposure (10k CNY)) or none"
    inside, tail = _unit_parts(header)
    found: dict[float, str] = {}
    several: list[str] = []
    for part in inside:
        try:
            named = _part_scale(part)
        except _Unreadable:
            raise BookError(
                f"book {book}: the exposure header {str(header)!r} names a unit in "
                f"{part!r} that agrisat cannot read; {rename} (amounts in yuan)"
            ) from None
        except _Several as two:
            several.append(str(two))
            continue
        if named is not None and named[0] != 1.0:
            found.setdefault(*named)
    if tail is not None and (multiple := _tail_scale(tail)) not in (None, 1.0):
        found.setdefault(float(multiple), tail)
    if several or len(found) > 1:
        names = ", ".join([*several, *found.values()])
        raise BookError(
            f"book {book}: the exposure header {str(header)!r} names several units "
            f"({names}); {rename} (amounts in yuan)"
        )
    if not found:
        return 1.0, None
    return next(iter(found.items()))
