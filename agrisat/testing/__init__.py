"""Factories for tests: real COGs, Sentinel-2 STAC items, static catalogs and tiny archives.

Shipped inside the package so that every test module (and users' own tests) build their data
the same way. Nothing here touches the network.
"""

from __future__ import annotations

from .archive import (
    BARE_SOIL,
    DEFAULT_BASELINES,
    REFLECTANCE_BANDS,
    SyntheticArchive,
    SyntheticFarm,
    make_archive,
    strip_archive,
    two_farm_archive,
)
from .cog import as_affine, write_cog
from .stac import (
    BANDS,
    CONVENTIONS,
    Convention,
    asset_key,
    footprint_from_grid,
    item_dir,
    make_s2_item,
    reflectance_to_dn,
    write_static_catalog,
)
from .xlsx import shown_fill

__all__ = [
    "BANDS",
    "BARE_SOIL",
    "CONVENTIONS",
    "DEFAULT_BASELINES",
    "REFLECTANCE_BANDS",
    "Convention",
    "SyntheticArchive",
    "SyntheticFarm",
    "as_affine",
    "asset_key",
    "footprint_from_grid",
    "item_dir",
    "make_archive",
    "make_s2_item",
    "reflectance_to_dn",
    "shown_fill",
    "strip_archive",
    "two_farm_archive",
    "write_cog",
    "write_static_catalog",
]
