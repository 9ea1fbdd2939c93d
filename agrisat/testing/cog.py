"""Write real Cloud-Optimized GeoTIFFs from numpy arrays (for tests and the demo archive)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.io import MemoryFile

__all__ = ["as_affine", "write_cog"]

_DTYPES = {np.dtype("uint8"), np.dtype("uint16"), np.dtype("int16"), np.dtype("float32")}


def as_affine(transform: Affine | Sequence[float]) -> Affine:
    """Return ``transform`` as an :class:`affine.Affine`.

    Accepts an Affine, or the 6 (or 9) numbers of a STAC ``proj:transform`` /
    ``Affine`` in row-major order ``[a, b, c, d, e, f]``.
    """
    if isinstance(transform, Affine):
        return transform
    values = [float(v) for v in transform]
    if len(values) not in (6, 9):
        raise ValueError(f"a transform needs 6 or 9 numbers, got {len(values)}")
    return Affine(*values[:6])


def write_cog(
    path: str | Path,
    array: np.ndarray,
    *,
    transform: Affine | Sequence[float],
    crs: int | str | CRS,
    nodata: float | None = 0,
    blocksize: int = 256,
    compress: str = "DEFLATE",
    overview_resampling: str = "average",
    predictor: int | None = None,
    level: int | None = None,
) -> Path:
    """Write ``array`` as a Cloud-Optimized GeoTIFF with internal tiling and overviews.

    Parameters
    ----------
    path
        Target file; parent directories are created.
    array
        2-D ``(y, x)`` or 3-D ``(band, y, x)`` array of uint8, uint16, int16 or float32.
    transform
        Pixel-to-CRS affine transform (Affine or its 6 numbers).
    crs
        EPSG code (int), any string rasterio understands, or a CRS.
    nodata
        Nodata value written into the file (``None`` for none).
    blocksize
        Internal tile size in pixels (a multiple of 16).
    compress
        GDAL compression name.
    overview_resampling
        Resampling used to build overviews; use ``"nearest"`` (or ``"mode"``) for class maps
        such as SCL so that overviews hold real classes.
    predictor, level
        GDAL ``PREDICTOR`` (2: horizontal differencing, good for smooth integer images) and
        compression ``LEVEL``; None leaves GDAL's default.

    Returns
    -------
    Path
        The written file.
    """
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.ndim != 3:
        raise ValueError(f"write_cog needs a 2-D or 3-D array, got shape {array.shape}")
    if arr.dtype not in _DTYPES:
        raise ValueError(f"write_cog writes uint8/uint16/int16/float32, got {arr.dtype}")
    if blocksize % 16:
        raise ValueError(f"blocksize must be a multiple of 16, got {blocksize}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    crs_obj = CRS.from_epsg(crs) if isinstance(crs, int) else CRS.from_user_input(crs)
    count, height, width = arr.shape
    options: dict[str, int] = {}
    if predictor is not None:
        options["predictor"] = predictor
    if level is not None:
        options["level"] = level
    # The COG driver only supports CreateCopy: build the raster in memory, then copy it, which
    # lays out the IFDs, overviews and tiles in the order COG readers expect.
    with (
        MemoryFile() as mem,
        mem.open(
            driver="MEM",
            width=width,
            height=height,
            count=count,
            dtype=arr.dtype,
            crs=crs_obj,
            transform=as_affine(transform),
            nodata=nodata,
        ) as src,
    ):
        src.write(arr)
        rasterio.shutil.copy(
            src,
            str(out),
            driver="COG",
            blocksize=blocksize,
            compress=compress,
            overview_resampling=overview_resampling,
            **options,
        )
    return out
