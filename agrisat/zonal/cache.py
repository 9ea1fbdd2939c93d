"""A disk cache of coverage weights, one file per farm group, so a later night skips exactextract.

Coverage weights depend only on the farms' geometries in the grid's CRS and on the pixel window
they are measured on; both are hashed into the key of a group's file:

- :data:`WEIGHTS_VERSION` (bumped whenever the weights algorithm or the file layout changes);
- the grid's CRS (WKT) and pixel size, the window's upper-left corner in that CRS and its shape
  (so a grid that grows, or moves by whole blocks, still finds the unchanged groups);
- every farm id of the group and its geometry's WKB in the grid CRS, in order, length-prefixed.

A book with one changed farm changes the key of that farm's group only; the other groups load
from disk. The file (``<key>.npz``, uncompressed, no pickles) stores the key again, the farm ids
and the CSR arrays. It is written to a temporary name and renamed (see
:func:`agrisat.store.atomic_path`), so a crash leaves the old file or the new one, never half a
file under the final name (not fsynced: after a power cut a file may be empty or torn); a
file that does not load, whose stored key or farm ids differ, or whose arrays are inconsistent
is logged and recomputed, never trusted. Files unused for :data:`MAX_AGE_DAYS` are deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

__all__ = ["MAX_AGE_DAYS", "WEIGHTS_VERSION", "WeightsCache", "group_key"]

log = logging.getLogger(__name__)

#: Part of every key: bump when coverage weights would come out differently.
WEIGHTS_VERSION = 1
#: A cache file not used (loaded or written) for this many days is deleted by :meth:`prune`.
MAX_AGE_DAYS = 14


def group_key(
    *,
    crs_wkt: str,
    resolution: float,
    origin: tuple[float, float],
    shape: tuple[int, int],
    farm_ids: np.ndarray,
    wkbs: np.ndarray,
) -> str:
    """The cache key of one farm group: a hex digest of everything its weights depend on.

    Parameters
    ----------
    crs_wkt
        The grid's CRS.
    resolution
        Pixel size in CRS units.
    origin
        Upper-left corner (x, y) of the group's window, in the grid CRS.
    shape
        Window (rows, columns).
    farm_ids
        The group's farm ids, in row order.
    wkbs
        The group's geometries in the grid CRS as WKB, in row order.
    """
    h = hashlib.blake2b(digest_size=20)
    head = f"agrisat-weights/{WEIGHTS_VERSION}|{crs_wkt}|{resolution!r}|{origin!r}|{shape!r}"
    h.update(head.encode("utf-8"))
    ids = [str(i).encode("utf-8") for i in farm_ids]
    geoms = [bytes(w) for w in wkbs]
    # length prefixes: no two different lists of ids and geometries hash the same byte stream
    h.update(np.array([len(b) for b in ids], dtype="<i8").tobytes())
    h.update(b"".join(ids))
    h.update(np.array([len(b) for b in geoms], dtype="<i8").tobytes())
    h.update(b"".join(geoms))
    return h.hexdigest()


class WeightsCache:
    """Coverage weights of farm groups on disk under ``folder`` (see the module).

    Parameters
    ----------
    folder
        Where the ``<key>.npz`` files live (created on first write).
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Path:
        """The file of ``key``."""
        return self.folder / f"{key}.npz"

    def load(self, key: str, farm_ids: np.ndarray, n_cells: int) -> sp.csr_matrix | None:
        """The weights stored under ``key``, or None when absent or not trustworthy.

        Parameters
        ----------
        key
            From :func:`group_key`.
        farm_ids
            The group's farm ids; the file must hold the same, in the same order.
        n_cells
            Pixels of the group's window (the matrix's column count).
        """
        path = self.path(key)
        if not path.exists():
            self.misses += 1
            return None
        try:
            mat = _read(path, key, farm_ids, n_cells)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            log.warning(
                "weights cache file %s is unusable (%s); recomputing it", path.name, _why(exc)
            )
            self.misses += 1
            return None
        _touch(path)
        self.hits += 1
        return mat

    def save(self, key: str, farm_ids: np.ndarray, weights: sp.csr_matrix) -> None:
        """Store ``weights`` under ``key`` atomically (a failure to write is logged, not raised)."""
        from ..store import atomic_path

        buf = io.BytesIO()
        np.savez(
            buf,
            key=np.array(key),
            farm_ids=np.asarray([str(i) for i in farm_ids], dtype=str),
            shape=np.asarray(weights.shape, dtype=np.int64),
            indptr=weights.indptr,
            indices=weights.indices,
            data=weights.data,
        )
        try:
            # temporary file + rename, without fsync: a file a power cut leaves empty or torn
            # fails the checks in load() and is recomputed, so durability is not worth a sync
            with atomic_path(self.path(key)) as tmp:
                tmp.write_bytes(buf.getbuffer())
        except OSError as exc:  # a full disk must not fail the night: weights are recomputable
            log.warning("cannot write weights cache file %s (%s)", self.path(key).name, exc)

    def prune(self, *, max_age_days: float = MAX_AGE_DAYS) -> int:
        """Delete cache files not used for ``max_age_days``; returns how many went."""
        if not self.folder.is_dir():
            return 0
        limit = time.time() - max_age_days * 86400.0
        gone = 0
        for path in self.folder.glob("*.npz"):
            try:
                if path.stat().st_mtime < limit:
                    path.unlink()
                    gone += 1
            except FileNotFoundError:
                continue
        if gone:
            log.info("weights cache: %d unused file(s) deleted", gone)
        return gone


def _read(path: Path, key: str, farm_ids: np.ndarray, n_cells: int) -> sp.csr_matrix:
    with np.load(path, allow_pickle=False) as z:
        if str(z["key"]) != key:
            raise ValueError("stored key differs")
        ids = z["farm_ids"]
        shape = tuple(int(v) for v in z["shape"])
        indptr, indices, data = z["indptr"], z["indices"], z["data"]
    n = len(farm_ids)
    if shape != (n, n_cells) or len(ids) != n or not np.array_equal(ids.astype(object), farm_ids):
        raise ValueError("stored farms or window differ")
    if len(indptr) != n + 1 or indptr[0] != 0 or len(indices) != len(data):
        raise ValueError("inconsistent sparse arrays")
    if indptr[-1] != len(indices) or np.any(np.diff(indptr) < 0):
        raise ValueError("inconsistent sparse arrays")
    if len(indices) and (indices.min() < 0 or indices.max() >= n_cells):
        raise ValueError("cell index out of the window")
    if len(data) and not (np.isfinite(data).all() and data.min() >= 0 and data.max() <= 1 + 1e-9):
        raise ValueError("coverage fraction out of [0, 1]")
    return sp.csr_matrix((data, indices, indptr), shape=shape)


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(path)  # marks the file used, for prune()


def _why(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}"
