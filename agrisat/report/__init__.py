"""The one-file HTML report for risk teams: summary, freshness, map, alerts, roll-up, cards.

``build_report(workdir, out, lang="en")`` writes a self-contained file (no CDN, no network:
CSS, JS and images inline) that opens offline and can be mailed.
"""

from __future__ import annotations

from .builder import build_report
from .strings import LANGS, label

__all__ = ["LANGS", "build_report", "label"]
