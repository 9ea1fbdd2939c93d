"""The zonal stage's input: one fused dask task per chunk, from DN to masks and indices.

:func:`prepared_stack` builds on :func:`agrisat.cube.load_raw`: each chunk's reads, scaling,
masking and index arithmetic run in a single task, so a block is decoded once and no
intermediate arrays are kept. 20 m bands read on their own grid are repeated to 10 m here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pystac
from odc.geo.geobox import GeoBox

from .config import CubeSettings
from .cube import SCL, load_raw
from .errors import ConfigError

__all__ = ["pixel_layers", "prepared_stack", "scl_lut"]


def _upsample(arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Each pixel of a (t, y, x) block repeated 2 × 2, cut to ``shape`` (nearest neighbour)."""
    t, h, w = arr.shape
    out = np.empty((t, h, 2, w, 2), dtype=arr.dtype)
    out[...] = arr[:, :, None, :, None]
    return out.reshape(t, 2 * h, 2 * w)[:, : shape[1], : shape[2]]


def scl_lut(not_clear: tuple[int, ...], water_class: int) -> np.ndarray:
    """SCL class → code: bit 0 data, bit 1 a clear class, bit 2 water (256 entries)."""
    lut = np.zeros(256, dtype=np.uint8)
    lut[1:] = 1
    lut[[c for c in range(256) if c not in not_clear]] |= 2
    lut[water_class] |= 4
    return lut


def pixel_layers(
    band_dn: list[np.ndarray],
    code: np.ndarray | None,
    scale: np.ndarray,
    offset: np.ndarray,
    *,
    bands: tuple[str, ...],
    indices: tuple[str, ...],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """Masks and indices of pixels: ``valid``, ``clear``, ``water`` (bool) and one float32
    array per index, shaped like the inputs (time first).

    ``band_dn`` are the bands' DN (0 = nodata) and ``code`` the SCL codes of
    :func:`scl_lut` (None: all valid pixels clear), all on the same pixels: a whole chunk
    (:func:`_prepare_block`) or the pixels under farms (:func:`agrisat.pixels.fused_sums`),
    so both paths do the same float32 arithmetic. ``scale``/``offset``: (band, time).
    """
    from .indices import compute_index

    valid = np.ones(band_dn[0].shape, dtype=bool)
    refl = {}
    for k, b in enumerate(bands):
        arr = band_dn[k]
        has = arr != 0
        valid &= has
        per_time = (-1, *([1] * (arr.ndim - 1)))
        r = arr.astype(np.float32)  # in place from here: no float temporaries per band
        r *= scale[k].reshape(per_time)
        r += offset[k].reshape(per_time)
        np.copyto(r, np.float32(np.nan), where=~has)
        refl[b] = r
    if code is not None:
        valid &= (code & 1).astype(bool)
        clear = valid & (code & 2).astype(bool)
        water = clear & (code & 4).astype(bool)
    else:
        clear = valid
        water = np.zeros_like(valid)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = [np.asarray(compute_index(n, refl), dtype=np.float32) for n in indices]
    return valid, clear, water, values


def _prepare_block(
    scale: np.ndarray,
    offset: np.ndarray,
    *dn: np.ndarray,
    bands: tuple[str, ...],
    has_scl: bool,
    indices: tuple[str, ...],
    not_clear: tuple[int, ...],
    water_class: int,
    factors: tuple[int, ...],
) -> np.ndarray:
    """One chunk: DN → reflectance → masks and indices, stacked as (var, t, y, x) float32.

    ``scale`` and ``offset`` are this chunk's (band, time) slices; ``factors`` says which of
    ``dn`` (bands, then SCL) come from a grid twice as coarse and are upsampled here.
    """
    shape = next(a.shape for a, f in zip(dn, factors, strict=True) if f == 1)
    band_dn = [dn[k] if factors[k] == 1 else _upsample(dn[k], shape) for k in range(len(bands))]
    code = None
    if has_scl:
        # one lookup per SCL class on the SCL's own (20 m) grid, then one upsampling of the
        # result
        code = scl_lut(not_clear, water_class)[dn[len(bands)]]
        if factors[len(bands)] != 1:
            code = _upsample(code, shape)
    valid, clear, water, values = pixel_layers(
        band_dn, code, scale, offset, bands=bands, indices=indices
    )
    out = np.empty((3 + len(indices), *shape), dtype=np.float32)
    out[0], out[1], out[2] = valid, clear, water
    for j, v in enumerate(values):
        out[3 + j] = v
    return out


def prepared_stack(
    items: Sequence[pystac.Item],
    geobox: GeoBox,
    *,
    indices: Sequence[str],
    settings: CubeSettings = CubeSettings(),
    time_chunk: int = 1,
) -> tuple[Any, tuple[str, ...]]:
    """The zonal stage's input: one fused task per chunk from DN to masks and indices.

    Returns a dask array (variable, time, y, x) of float32 — ``valid``, ``clear``, ``water``
    (0/1) then one layer per index — and the variable names. Each chunk's reads, scaling,
    masking and index arithmetic run in a single task, so a block is decoded once and no
    intermediate arrays are kept. Bands twice as coarse as ``geobox`` (SCL, 20 m bands) are
    read on their own grid and repeated 2 × 2 in that task rather than warped by GDAL.
    A task covers ``time_chunk`` dates.
    """
    import dask.array as da

    from .indices import bands_for

    rc = load_raw(
        items,
        geobox,
        bands=bands_for(indices),
        settings=settings,
        native=True,
        time_chunk=time_chunk,
    )
    names_in = [*rc.bands, *([SCL] if rc.has_scl else [])]
    arrays, factors = [], []
    for b in names_in:
        if rc.coarse is not None and b in rc.coarse.data_vars:
            arrays.append(rc.coarse[b].data)
            factors.append(2)
        else:
            arrays.append(rc.data[b].data)
            factors.append(1)
    fine = arrays[factors.index(1)]
    if any(a.numblocks != fine.numblocks for a in arrays):  # cannot happen with even chunks
        raise ConfigError("coarse and fine chunk grids differ; use an even chunk_size")
    tchunks = fine.chunks[0]
    scale = da.from_array(rc.scale, chunks=(rc.scale.shape[0], tchunks))
    offset = da.from_array(rc.offset, chunks=(rc.offset.shape[0], tchunks))
    names = ("valid", "clear", "water", *indices)
    pairs: list[Any] = [scale, "bt", offset, "bt"]
    for a in arrays:
        pairs += [a, "tyx"]
    stack = da.blockwise(
        _prepare_block,
        "vtyx",
        *pairs,
        new_axes={"v": len(names)},
        # the output takes the fine grid's chunks, whichever input carries y and x last
        adjust_chunks={"t": fine.chunks[0], "y": fine.chunks[1], "x": fine.chunks[2]},
        align_arrays=False,  # coarse chunks are half the size of fine ones, by design
        concatenate=True,
        dtype=np.float32,
        meta=np.empty((0, 0, 0, 0), dtype=np.float32),
        bands=rc.bands,
        has_scl=rc.has_scl,
        indices=tuple(indices),
        not_clear=tuple(settings.scl_not_clear),
        water_class=int(settings.scl_water),
        factors=tuple(factors),
    )
    return stack, names
