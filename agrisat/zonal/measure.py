"""Exact coverage weights of one farm group on one window, with exactextract.

This module imports only numpy, scipy.sparse and exactextract — never the ``agrisat`` package —
because it is also run as a script: :mod:`agrisat.zonal.pool` starts it as a worker process
(``python measure.py``) that measures groups sent over its stdin. Importing ``agrisat`` there
would cost each worker 1.3–1.7 s and 220 MB (measured), the whole gain on a first night.

Worker protocol (between processes of one run, through a private temporary folder, so pickle is
safe): the parent writes each job, ``(corner, shape, wkbs, crs_wkt)``, as a pickle file and its
path as one line to the worker's stdin; the worker writes ``(n_rows, n_cols, indptr, indices,
data)`` to ``<path>.out`` and answers ``ok`` or ``error <message>``, one line per job, on its
stdout. EOF on stdin ends the worker. Files, not pipes, carry the arrays: the parent reads each
answer in one system call instead of one per 64 KB of pipe, each of which would wait for the
GIL behind the parent's own exactextract work.
"""

from __future__ import annotations

import functools
import os
import pickle
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["measure"]


def measure(
    corner: tuple[float, float, float],
    shape: tuple[int, int],
    wkbs: np.ndarray,
    crs_wkt: str,
    *,
    cells: Callable[[Any, np.ndarray, str], tuple[np.ndarray, ...]] | None = None,
) -> sp.csr_matrix:
    """Coverage weights of ``wkbs`` on a window: farm × window pixel (row-major) CSR matrix.

    Parameters
    ----------
    corner
        Upper-left (x, y) of the window and the pixel size, in the grid CRS.
    shape
        Window (rows, columns).
    wkbs
        The farms' geometries in the grid CRS as WKB.
    crs_wkt
        The grid's CRS.
    cells
        Replaces :func:`_cells` (the exactextract call), e.g. to count calls in tests.
    """
    from exactextract.raster import NumPyRasterSource

    wx0, wy1, res = corner
    h, w = shape
    src = NumPyRasterSource(
        np.zeros((h, w), dtype=np.uint8),
        wx0,
        wy1 - h * res,
        wx0 + w * res,
        wy1,
        srs_wkt=crs_wkt,
    )
    ids, cover, rows = (cells or _cells)(src, wkbs, crs_wkt)
    return sp.csr_matrix((cover, (rows, ids)), shape=(len(wkbs), h * w))


def _cells(src: object, wkbs: np.ndarray, crs_wkt: str) -> tuple[np.ndarray, ...]:
    """Cell ids, coverage fractions and row (position in ``wkbs``) of every covered pixel."""
    from exactextract import exact_extract

    _, source_cls, writer_cls = _ee_classes()
    writer = writer_cls()
    exact_extract(
        src,
        source_cls(wkbs, crs_wkt),
        ["cell_id", "coverage"],
        include_cols=["_pos"],
        output=writer,
    )
    none_i, none_f = np.zeros(0, np.int64), np.zeros(0, np.float64)
    # one concatenation for all farms, not a Python loop per farm (100k farms: seconds)
    lengths = np.fromiter((len(c) for c in writer.cells), dtype=np.int64, count=len(writer.cells))
    cells = np.concatenate([none_i, *(np.asarray(c, np.int64) for c in writer.cells)])
    cover = np.concatenate([none_f, *(np.asarray(c, np.float64) for c in writer.cover)])
    rows = np.repeat(np.asarray(writer.pos, dtype=np.int64), lengths)
    return cells, cover, rows


@functools.cache
def _ee_classes() -> tuple[Any, Any, Any]:
    """exactextract feature, source and writer classes that skip GeoJSON and pandas."""
    from exactextract.feature import Feature, FeatureSource
    from exactextract.writer import Writer

    class WkbFeature(Feature):  # type: ignore[misc]
        def __init__(self, pos: int = -1, wkb: bytes | None = None) -> None:
            Feature.__init__(self)
            self.pos, self.wkb = pos, wkb
            self.props: dict[str, Any] = {}

        def geometry(self) -> bytes | None:
            return self.wkb

        def set_geometry(self, wkb: bytes | None) -> None:
            self.wkb = wkb

        def set_geometry_format(self) -> str:
            return "wkb"

        def get(self, name: str) -> object:
            return self.pos if name == "_pos" else self.props[name]

        def set(self, name: str, value: object) -> None:
            if name == "_pos":
                self.pos = int(value)  # type: ignore[call-overload]
            else:
                self.props[name] = value

        def fields(self) -> list[str]:
            return ["_pos"]

    class WkbSource(FeatureSource):  # type: ignore[misc]
        def __init__(self, wkbs: np.ndarray, crs_wkt: str) -> None:
            super().__init__()
            self.wkbs, self.crs_wkt = wkbs, crs_wkt

        def count(self) -> int:
            return len(self.wkbs)

        def __iter__(self):  # type: ignore[no-untyped-def]
            for i, w in enumerate(self.wkbs):
                yield WkbFeature(i, w)

        def srs_wkt(self) -> str:
            return self.crs_wkt

    class Sink(Feature):  # type: ignore[misc]
        """Receives each written feature's fields straight into the writer's lists."""

        def __init__(self, pos: list[int], cells: list[np.ndarray], cover: list[np.ndarray]):
            Feature.__init__(self)
            self.put: dict[str, Callable[[Any], None]] = {
                "_pos": pos.append,
                "cell_id": cells.append,
                "coverage": cover.append,
            }

        def set(self, name: str, value: object) -> None:
            self.put[name](value)

        def set_geometry(self, wkb: bytes | None) -> None:
            pass  # the features carry none out (no "geometry" column asked for)

        def set_geometry_format(self) -> str:
            return "wkb"

    class CellWriter(Writer):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.pos: list[int] = []
            self.cells: list[np.ndarray] = []
            self.cover: list[np.ndarray] = []
            # one sink for all features: no Python feature object and dict per farm
            self.sink = Sink(self.pos, self.cells, self.cover)

        def add_operation(self, op: object) -> None:
            pass

        def add_column(self, name: str) -> None:
            pass

        def add_geometry(self) -> None:
            pass

        def write(self, feature: object) -> None:
            feature.copy_to(self.sink)  # type: ignore[attr-defined]

        def features(self) -> None:
            return None

    return WkbFeature, WkbSource, CellWriter


def _serve() -> None:
    """Worker loop: measure the job files named on stdin, one answer line each on stdout."""
    # the answers get their own copy of stdout; fd 1 goes to stderr, so that anything a
    # library prints cannot corrupt them
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    for line in sys.stdin:
        path = line.strip()
        try:
            with open(path, "rb") as f:
                corner, shape, wkbs, crs_wkt = pickle.load(f)
            m = measure(corner, shape, wkbs, crs_wkt)
            with open(path + ".out", "wb") as f:
                f.write(pickle.dumps((*m.shape, m.indptr, m.indices, m.data), protocol=5))
            answer = "ok"
        except Exception as exc:  # any failure goes to the parent, which measures it itself
            answer = f"error {type(exc).__name__}: {exc}".replace("\n", " ")[:500]
        out.write(answer + "\n")
        out.flush()


if __name__ == "__main__":
    _serve()
