"""The embedded demo: a synthetic Sentinel-2 archive over Shandong with known events.

``generate_demo(out_dir)`` writes a static STAC catalog of COGs, a loan book, ``truth.csv``
and ``demo.json``; ``build_world(spec)`` gives the noise-free truth behind the pixels.
"""

from __future__ import annotations

from .archive import generate_demo
from .events import TRUTH_COLUMNS
from .spec import DEFAULT_CONVENTIONS, DemoArchive, DemoSpec, TileSpec
from .world import DemoWorld, build_world

__all__ = [
    "DEFAULT_CONVENTIONS",
    "TRUTH_COLUMNS",
    "DemoArchive",
    "DemoSpec",
    "DemoWorld",
    "TileSpec",
    "build_world",
    "generate_demo",
]
