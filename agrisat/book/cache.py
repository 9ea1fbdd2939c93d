"""A nightly run's book checks, reused while the book file has not changed.

Checking 100,000 polygons (validity, repair, areas, offsets) takes about a second, every
night, for a book that changes a few times a year. :func:`load_book_cached` keeps the checked
farms and rejects in the workdir under a key made of the file's bytes, the check settings, the
CRS/layer options and the checking code itself, and reads them back while all of those are
unchanged. Any difference (one byte of the file, a setting, an edit to :mod:`agrisat.book`)
means a fresh :func:`~agrisat.book.load_book`.

Only single-file books are cached (GeoParquet, GeoPackage, GeoJSON, FlatGeobuf, CSV, zip): a
Shapefile's sidecars or a FileGDB folder would need every member hashed, and they are the
rare case. The cache holds what the store's ``farms`` table already holds (accepted farms) and
the rejects; it lives in the workdir beside them and is replaced as a whole (a temporary
folder renamed into place), so a run killed while writing it leaves the previous one or none.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyproj

from ..calendar import default_calendars
from ..config import BookSettings
from . import Farms, load_book
from ._crops import warn_crops_without_calendar

__all__ = ["CACHED_SUFFIXES", "load_book_cached"]

log = logging.getLogger(__name__)

#: book files whose bytes are the whole book (no sidecar files)
CACHED_SUFFIXES: tuple[str, ...] = (
    ".parquet",
    ".geoparquet",
    ".gpkg",
    ".geojson",
    ".json",
    ".fgb",
    ".csv",
    ".txt",
    ".zip",
)


def load_book_cached(
    source: str | os.PathLike[str] | gpd.GeoDataFrame | Farms,
    cache_dir: str | os.PathLike[str],
    *,
    crs: str | None = None,
    layer: str | None = None,
    settings: BookSettings | None = None,
) -> Farms:
    """:func:`~agrisat.book.load_book`, or its stored result for the same file and options.

    Parameters
    ----------
    source
        The book file (a GeoDataFrame or :class:`~agrisat.book.Farms` is checked as
        :func:`~agrisat.book.load_book` does, without the cache).
    cache_dir
        The folder that keeps the checked book (a run's :attr:`Store.book_cache_dir
        <agrisat.store.Store.book_cache_dir>`); made when missing.
    crs, layer, settings
        As for :func:`~agrisat.book.load_book`; they are part of the key.

    Returns
    -------
    Farms
        Equal to ``load_book(source, ...)``: the same farms (geometries bit for bit), the
        same rejects and source name.
    """
    s = settings or BookSettings()
    if not isinstance(source, str | os.PathLike):  # a GeoDataFrame or Farms: nothing to key on
        return load_book(source, crs=crs, layer=layer, settings=s)
    path = Path(source)
    if path.suffix.lower() not in CACHED_SUFFIXES or not path.is_file():
        return load_book(source, crs=crs, layer=layer, settings=s)
    try:
        key = _key(path, crs, layer, s)
    except OSError:  # unreadable: load_book names the file and the problem
        return load_book(source, crs=crs, layer=layer, settings=s)
    folder = Path(cache_dir)
    hit = _read(folder, key)
    if hit is not None:
        log.info(
            "book %s unchanged since its last check: %d farms accepted, %d rejected",
            hit.source,
            len(hit.gdf),
            len(hit.rejects),
        )
        # said on every run, as the check that made the cache said it
        warn_crops_without_calendar(hit.gdf["crop"], default_calendars(), hit.source)
        return hit
    farms = load_book(source, crs=crs, layer=layer, settings=s)
    _write(folder, key, farms)
    return farms


def _key(path: Path, crs: str | None, layer: str | None, s: BookSettings) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(functools.partial(f.read, 1 << 22), b""):
            h.update(block)
    # the max_file_mb guard is a property of the upload, the others decide the checks
    opts = {k: v for k, v in dataclasses.asdict(s).items() if k != "max_file_mb"}
    h.update(repr((path.name, crs, layer, sorted(opts.items()), _code())).encode())
    return h.hexdigest()[:32]


@functools.cache
def _code() -> str:
    """A digest of the code that reads and checks books: a changed check is a changed key."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    # the i18n tables hold the Chinese column and crop names the checks accept
    extra = [here.parent / "gcj02.py", here.parent / "i18n" / "tables.py"]
    for f in sorted([*here.glob("*.py"), *extra]):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _read(folder: Path, key: str) -> Farms | None:
    entry = folder / key
    if not (entry / "done").is_file():
        return None
    try:
        gdf = gpd.read_parquet(entry / "farms.parquet")
        rejects = pd.read_parquet(entry / "rejects.parquet")
        # source columns read as Python objects (a CSV's cells) come back as strings
        loose = (entry / "object_columns").read_text(encoding="utf-8").splitlines()
        rejects = rejects.astype({c: object for c in loose if c in rejects.columns})
        source = (entry / "source").read_text(encoding="utf-8")
        crs = (entry / "crs").read_text(encoding="utf-8")
        # GeoParquet gives the CRS back as PROJJSON: equal, but not the same text, and the
        # store's farms fingerprint hashes the text (a mismatch rewrote the farms table on
        # the night after every fresh check, and compared every polygon for redrawn farms)
        if crs and gdf.crs is not None and gdf.crs == pyproj.CRS.from_user_input(crs):
            gdf.set_crs(crs, allow_override=True, inplace=True)
    # damaged or from another library version
    except (OSError, ValueError, pyproj.exceptions.CRSError) as exc:
        log.warning("stored book checks unreadable (%s); checking the book again", exc)
        return None
    return Farms(gdf=gdf, rejects=rejects, source=source)


def _write(folder: Path, key: str, farms: Farms) -> None:
    """Replace the stored checks by ``farms`` (best effort: a failure costs time, not data).

    What is stored is read back and compared first: a book whose rejects Parquet cannot hold
    exactly (a source column of mixed types) is simply checked again next time.
    """
    tmp: Path | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder))
        farms.gdf.to_parquet(tmp / "farms.parquet")
        farms.rejects.to_parquet(tmp / "rejects.parquet")
        (tmp / "source").write_text(farms.source, encoding="utf-8")
        crs = farms.gdf.crs
        (tmp / "crs").write_text("" if crs is None else str(crs), encoding="utf-8")
        loose = [str(c) for c, t in farms.rejects.dtypes.items() if pd.api.types.is_object_dtype(t)]
        (tmp / "object_columns").write_text("\n".join(loose), encoding="utf-8")
        (tmp / "done").write_text("", encoding="utf-8")
        back = _read(tmp, ".")
        if back is None or not _same(back, farms):
            raise ValueError("the stored book does not read back equal")
        shutil.rmtree(folder / key, ignore_errors=True)
        tmp.rename(folder / key)
    except (OSError, ValueError, TypeError) as exc:
        log.info("book checks not stored for reuse (%s)", type(exc).__name__)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    for old in folder.iterdir():  # one book's checks are kept: the latest
        if old.name != key:
            shutil.rmtree(old, ignore_errors=True)


def _same(a: Farms, b: Farms) -> bool:
    try:
        pd.testing.assert_frame_equal(a.rejects, b.rejects)
        pd.testing.assert_frame_equal(
            pd.DataFrame(a.gdf.drop(columns="geometry")),
            pd.DataFrame(b.gdf.drop(columns="geometry")),
        )
    except AssertionError:
        return False
    return (
        a.source == b.source
        and a.gdf.crs == b.gdf.crs
        and str(a.gdf.crs) == str(b.gdf.crs)  # the text too: the farms fingerprint hashes it
        and bool(a.gdf.geometry.geom_equals_exact(b.gdf.geometry, tolerance=0).all())
    )
