"""Turn a loan-book source (file or GeoDataFrame) into raw rows + geometries + a CRS.

Nothing here judges rows; whole-file problems raise :class:`BookError` naming the file.
"""

from __future__ import annotations

import io
import os
import warnings
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

from ..errors import BookError
from ._csv import read_csv
from ._raw import RawBook, resolve_crs

__all__ = ["MAX_FILE_MB", "SUPPORTED_SUFFIXES", "RawBook", "read_geodataframe", "read_path"]

#: Files (and the uncompressed content of zips) above this size are refused; see load_book.
MAX_FILE_MB: float = 500.0

# GML is left out on purpose: GDAL writes a .gfs file beside it when listing its layers and
# may fetch its XML schemas from the internet; convert it (ogr2ogr -f GPKG) first.
_OGR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp", ".fgb", ".gdb")
_PARQUET_SUFFIXES = (".parquet", ".geoparquet")
SUPPORTED_SUFFIXES: tuple[str, ...] = (*_OGR_SUFFIXES, *_PARQUET_SUFFIXES, ".zip", ".csv")
_RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".img", ".nc", ".hdf", ".png", ".jpg", ".jpeg", ".asc")
_RASTER_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+", b"\x89PNG", b"\xff\xd8\xff")
# Members of a zip we would open, best first; GeoJSON last because zips often carry JSON
# metadata beside the real layer.
_ZIP_MAIN = (".shp", ".gpkg", ".fgb", ".gdb", *_PARQUET_SUFFIXES)
_ZIP_FALLBACK = (".geojson", ".json")
_EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".xlsb", ".ods")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # legacy .xls (and other MS Office) files
_EXCEL_HINT = "Excel books are not read: save as CSV with a WKT geometry column (or as GeoPackage)"
_READ_ERRORS = (RuntimeError, OSError, ValueError, UnicodeDecodeError)


def read_geodataframe(
    gdf: gpd.GeoDataFrame, *, crs: str | None, name: str = "<GeoDataFrame>"
) -> RawBook:
    """Take a GeoDataFrame as a book (copied; the caller's frame is not changed)."""
    try:
        geom_name = gdf.geometry.name
    except AttributeError:
        raise BookError(f"book {name} has no active geometry column; call set_geometry()") from None
    frame = pd.DataFrame(gdf.drop(columns=[geom_name])).reset_index(drop=True)
    repeated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if repeated:
        raise BookError(f"book {name} repeats column name(s) {', '.join(repeated)}; rename them")
    geoms = np.asarray(gdf.geometry.to_numpy(), dtype=object)
    return RawBook(name, frame, geoms, resolve_crs(gdf.crs, crs, name))


def _path_size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def read_path(
    source: str | os.PathLike[str], *, crs: str | None, layer: str | None, max_mb: float
) -> RawBook:
    """Read a book file; see :func:`agrisat.book.load_book` for what is accepted."""
    text = os.fspath(source)
    if text.startswith("/vsi") or "://" in text:
        raise BookError(f"book {text}: only local files are read; download it first")
    path = Path(text)
    name = path.name
    if not path.exists():
        raise BookError(f"book {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".vrt":
        raise BookError(f"book {name}: GDAL .vrt files are refused (they can point at any file)")
    if suffix in _RASTER_SUFFIXES:
        raise BookError(f"book {name} is a raster image, not a vector loan book")
    if path.is_dir() and suffix != ".gdb":
        raise BookError(f"book {name} is a directory; give the book file itself")
    try:
        size_mb = _path_size(path) / 1e6
        head = b""
        if not path.is_dir():
            with path.open("rb") as fh:
                head = fh.read(256)
    except OSError as exc:
        raise BookError(f"book {name} cannot be read: {exc.strerror or exc}") from None
    if size_mb > max_mb:
        raise BookError(
            f"book {name} is {size_mb:.0f} MB, above the {max_mb:g} MB limit; "
            f"split it or raise the limit (max_file_mb)"
        )
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith((b"<ogrvrtdatasource", b"<vrtdataset")):
        raise BookError(f"book {name} is a GDAL VRT file; refused (it can point at any file)")
    if head.startswith(_RASTER_MAGIC):
        raise BookError(f"book {name} is a raster image, not a vector loan book")
    if suffix in _EXCEL_SUFFIXES or head.startswith(_OLE_MAGIC):
        raise BookError(f"book {name}: unsupported file type {suffix or '(Excel)'}; {_EXCEL_HINT}")
    if suffix == ".zip" or head.startswith(b"PK\x03\x04"):
        return _read_zip(path, crs=crs, layer=layer, max_mb=max_mb)
    if suffix in _PARQUET_SUFFIXES:
        return _from_gdf(_read_parquet(path, name), name, crs)
    if suffix == ".csv":
        return read_csv(path.read_bytes(), name, crs=crs)
    if suffix in _OGR_SUFFIXES:
        return _from_gdf(_read_ogr(str(path), name, layer), name, crs)
    raise BookError(
        f"book {name}: unsupported file type {suffix or '(no extension)'}; "
        f"use one of {', '.join(SUPPORTED_SUFFIXES)}"
    )


def _from_gdf(gdf: gpd.GeoDataFrame, name: str, crs: str | None) -> RawBook:
    return read_geodataframe(gdf, crs=crs, name=name)


def _read_ogr(dataset: str, name: str, layer: str | None) -> gpd.GeoDataFrame:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # GDAL chatter, not for the log
            layers = [(str(n), gt) for n, gt in pyogrio.list_layers(dataset)]
            spatial = [n for n, gt in layers if gt is not None]
            if layer is not None:
                if layer not in spatial:
                    raise BookError(
                        f"book {name} has no vector layer {layer!r}; layers: {', '.join(spatial)}"
                    )
                chosen = layer
            else:
                chosen = _pick_layer(dataset, name, spatial)
            return pyogrio.read_dataframe(dataset, layer=chosen)
    except _READ_ERRORS as exc:
        raise BookError(f"book {name} is not a readable vector file: {exc}") from None


def _pick_layer(dataset: str, name: str, spatial: list[str]) -> str:
    if not spatial:
        raise BookError(f"book {name} holds no vector layer with geometries")
    if len(spatial) == 1:
        return spatial[0]
    filled = [n for n in spatial if pyogrio.read_info(dataset, layer=n)["features"] != 0]
    if len(filled) == 1:
        return filled[0]
    raise BookError(
        f"book {name} has several vector layers ({', '.join(filled or spatial)}); "
        f"pass layer= or keep one layer per file"
    )


def _read_parquet(source: Path | io.BytesIO, name: str) -> gpd.GeoDataFrame:
    try:
        return gpd.read_parquet(source)
    except ValueError as exc:
        if "geo" in str(exc).lower():
            raise BookError(
                f"book {name} is Parquet without GeoParquet metadata; write it with "
                f"GeoDataFrame.to_parquet or use another format"
            ) from None
        raise BookError(f"book {name} is not a readable GeoParquet file: {exc}") from None
    except (OSError, RuntimeError) as exc:
        raise BookError(f"book {name} is not a readable GeoParquet file: {exc}") from None


def _read_zip(path: Path, *, crs: str | None, layer: str | None, max_mb: float) -> RawBook:
    name = path.name
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            # The cap covers what is unpacked too, so a zip bomb is refused before reading.
            unpacked = sum(i.file_size for i in infos) / 1e6
            if unpacked > max_mb:
                raise BookError(
                    f"book {name} unpacks to {unpacked:.0f} MB, above the {max_mb:g} MB limit"
                )
            members = [
                i.filename
                for i in infos
                if not i.is_dir()
                and not i.filename.startswith("__MACOSX/")
                and not Path(i.filename).name.startswith(".")
            ]
            gdbs = sorted({m.split(".gdb/")[0] + ".gdb" for m in members if ".gdb/" in m.lower()})
            plain = [m for m in members if ".gdb/" not in m.lower()]
            main = gdbs + [m for m in plain if m.lower().endswith(_ZIP_MAIN)]
            picks = main or [m for m in plain if m.lower().endswith(_ZIP_FALLBACK)]
            if not picks and any(m.startswith(("xl/", "[Content_Types].xml")) for m in members):
                raise BookError(f"book {name} is an Excel workbook; {_EXCEL_HINT}")
            if len(picks) != 1:
                what = (
                    "no vector file" if not picks else f"several vector files ({', '.join(picks)})"
                )
                raise BookError(f"book {name} holds {what}; zip exactly one book per archive")
            member = picks[0]
            if member.lower().endswith(_PARQUET_SUFFIXES):
                gdf = _read_parquet(io.BytesIO(zf.read(member)), name)
                return _from_gdf(gdf, name, crs)
    except zipfile.BadZipFile as exc:
        raise BookError(f"book {name} is not a readable zip file: {exc}") from None
    except OSError as exc:
        raise BookError(f"book {name} cannot be read: {exc}") from None
    archive = str(path.resolve())
    # GDAL only recognises archives by their .zip suffix unless the path is braced.
    root = f"/vsizip/{archive}" if archive.lower().endswith(".zip") else f"/vsizip/{{{archive}}}"
    return _from_gdf(_read_ogr(f"{root}/{member}", name, layer), name, crs)
