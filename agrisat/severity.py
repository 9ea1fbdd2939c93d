"""Severity of an alert: one table of rules (hazard, magnitude, duration) -> severity.

Split from :mod:`agrisat.alerts`, which re-exports these names: the rules are configuration
(:mod:`agrisat.config` builds them from the settings file), applied by the alert lifecycle.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SEVERITIES", "SEVERITY_RULES", "SeverityRule", "severity_of"]

SEVERITIES: tuple[str, ...] = ("watch", "warning", "critical")


@dataclass(frozen=True)
class SeverityRule:
    """``severity`` applies when the episode's peak magnitude >= ``min_magnitude`` AND it has
    lasted >= ``min_days``. The highest applicable severity wins; none applicable = ``watch``.

    Magnitude per hazard: drought = relative deficit, abrupt_loss = relative drop, flood =
    water share of the clear area, no_planting = NDVI gap to peers, stale_data = days unseen.
    """

    hazard: str
    severity: str
    min_magnitude: float
    min_days: int = 0


#: The one table of severity rules.
SEVERITY_RULES: tuple[SeverityRule, ...] = (
    SeverityRule("drought", "warning", 0.25),
    SeverityRule("drought", "warning", 0.15, 30),
    SeverityRule("drought", "critical", 0.40),
    SeverityRule("drought", "critical", 0.25, 45),
    SeverityRule("abrupt_loss", "warning", 0.0),
    SeverityRule("abrupt_loss", "critical", 0.5),
    SeverityRule("flood", "warning", 0.0),
    SeverityRule("flood", "critical", 0.5),
    SeverityRule("flood", "critical", 0.0, 20),
    SeverityRule("no_planting", "warning", 0.0),
    SeverityRule("no_planting", "critical", 0.0, 30),
    SeverityRule("stale_data", "warning", 45.0),
    SeverityRule("stale_data", "critical", 90.0),
)


def severity_of(
    hazard: str, magnitude: float, days: int, rules: tuple[SeverityRule, ...] = SEVERITY_RULES
) -> str:
    """Severity from the rules table (see :class:`SeverityRule`)."""
    best = 0
    for r in rules:
        if r.hazard == hazard and magnitude >= r.min_magnitude and days >= r.min_days:
            best = max(best, SEVERITIES.index(r.severity))
    return SEVERITIES[best]
