"""Anomaly detection on per-farm clear looks: own history, peers, abrupt loss, flood,
no planting, stale data; :func:`detect` runs them all."""

from __future__ import annotations

from .core import ANOMALY_COLUMNS, assemble, classify_looks, detect
from .detectors import (
    detect_abrupt_loss,
    detect_drought,
    detect_flood,
    detect_no_planting,
    detect_stale,
    normal_looks,
    peer_state,
)
from .features import look_features, own_history, peer_stats
from .seasonal import seasonal_gap
from .settings import DEFAULT_SETTINGS, HAZARD_PRIORITY, DetectSettings

__all__ = [
    "ANOMALY_COLUMNS",
    "DEFAULT_SETTINGS",
    "HAZARD_PRIORITY",
    "DetectSettings",
    "assemble",
    "classify_looks",
    "detect",
    "detect_abrupt_loss",
    "detect_drought",
    "detect_flood",
    "detect_no_planting",
    "detect_stale",
    "look_features",
    "normal_looks",
    "own_history",
    "peer_state",
    "peer_stats",
    "seasonal_gap",
]
