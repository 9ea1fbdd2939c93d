"""agrisat: early warning for agricultural loans from Sentinel-2 imagery.

The stages, each a module of plain functions over plain values:
``book`` → ``catalog`` → ``cube`` → ``indices`` → ``zonal`` → ``store`` → ``anomaly`` →
``alerts`` → ``export``; ``pipeline.run`` chains them and is the one place that computes.
"""

from __future__ import annotations

from .alerts import update_alerts
from .anomaly import detect
from .book import Farms, load_book
from .catalog import find_scenes, normalize_item
from .config import Settings, load_settings
from .cube import grid_for, load_cube
from .errors import AgrisatError
from .export import export_alerts
from .indices import INDICES, compute_index
from .observations import read_observations
from .pipeline import RunResult, run
from .rollup import rollup
from .store import Store
from .workspace import Workspace
from .workspace import open_workspace as open
from .zonal import coverage_weights, zonal_stats

__version__ = "0.1.0"

__all__ = [
    "INDICES",
    "AgrisatError",
    "Farms",
    "RunResult",
    "Settings",
    "Store",
    "Workspace",
    "__version__",
    "compute_index",
    "coverage_weights",
    "detect",
    "export_alerts",
    "find_scenes",
    "grid_for",
    "load_book",
    "load_cube",
    "load_settings",
    "normalize_item",
    "open",
    "read_observations",
    "rollup",
    "run",
    "update_alerts",
    "zonal_stats",
]
