"""The unit an exposure column's header names: ``风险敞口（万元）`` holds ten-thousands of yuan.

Chinese loan books often keep amounts in 万元 (10,000 yuan) and say so only in the header.
Read as yuan, such a book's exposure would be 10,000 times too small and every figure of the
roll-up wrong without an error, so the header's unit is recognised and applied.
"""

from __future__ import annotations

import re
import unicodedata

from ..errors import BookError

__all__ = ["amount_unit", "strip_unit"]

#: Header words that scale an amount (compared NFKC, lower-case), longest Chinese first so
#: that 百万 is not read as 万.
_CJK_SCALES: tuple[tuple[str, float], ...] = (
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
    "000": 1e3,
    "000s": 1e3,
    "thousand": 1e3,
    "thousands": 1e3,
    "wan": 1e4,
    "m": 1e6,
    "mn": 1e6,
    "mio": 1e6,
    "000000": 1e6,
    "million": 1e6,
    "millions": 1e6,
}
#: Currency words: a unit of one (they say what the amounts are in, not a multiple).
_CURRENCY_WORDS: frozenset[str] = frozenset({"yuan", "cny", "rmb", "元", "人民币"})
_BRACKETS = re.compile(r"[(\[（【](.*?)[)\]）】]")
_WORDS = re.compile(r"[a-z]+|\d+")
_TAIL = re.compile(r"[\W_]+")


def _scale_of(token: str) -> float | None:
    if token in _WORD_SCALES:
        return _WORD_SCALES[token]
    if token in _CURRENCY_WORDS:
        return 1.0
    for word, scale in _CJK_SCALES:
        if token in (word, f"{word}人民币"):
            return scale
    return None


def _unit_tokens(header: object) -> list[str]:
    """The header's parts that could be a unit: bracketed text, and the last word after a
    separator (``exposure_k``, ``贷款余额/万元``)."""
    text = unicodedata.normalize("NFKC", str(header)).strip().lower()
    inside = [t.strip() for t in _BRACKETS.findall(text)]
    outside = _BRACKETS.sub(" ", text)
    parts = [p for p in _TAIL.split(outside) if p]
    tokens: list[str] = []
    for piece in inside:
        tokens.extend(_WORDS.findall(piece))
        rest = piece
        for word, _ in _CJK_SCALES:  # longest first: 百万元 is not also 万元
            if word in rest:
                tokens.append(word)
                rest = rest.replace(word, " ")
    if len(parts) > 1:
        tokens.append(parts[-1])
    return tokens


def strip_unit(name: str) -> str:
    """``name`` (already normalised by ``normalise_name``) without a trailing unit word or a
    bracketed part: ``风险敞口_万元`` → ``风险敞口``, ``exposure_k`` → ``exposure``; else
    ``name`` unchanged."""
    parts = name.split("_")
    if len(parts) > 1 and _scale_of(parts[-1]) is not None:
        return "_".join(parts[:-1])
    return name


def amount_unit(header: object, *, book: str = "") -> tuple[float, str | None]:
    """The multiple of the currency unit that the amounts under ``header`` are written in.

    Returns ``(scale, unit)``: ``(1e4, "万元")`` for ``风险敞口（万元）``, ``(1e3, "k")`` for
    ``exposure_k``, ``(1.0, None)`` when the header names no scale (plain yuan, or a currency).

    Raises
    ------
    BookError
        When the header names two different scales (``exposure (千元, 万元)``): nobody can
        tell which one the amounts use.
    """
    found: dict[float, str] = {}
    for token in _unit_tokens(header):
        scale = _scale_of(token)
        if scale is not None and scale != 1.0:
            found.setdefault(scale, token)
    if len(found) > 1:
        raise BookError(
            f"book {book}: the exposure header {str(header)!r} names several units "
            f"({', '.join(found.values())}); rename it to name one (e.g. 风险敞口（万元）) "
            f"or none (amounts in yuan)"
        )
    if not found:
        return 1.0, None
    scale, unit = next(iter(found.items()))
    return scale, unit
