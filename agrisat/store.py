"""The embedded store: Parquet files in the workdir, committed by a manifest written last.

Why Parquet and not DuckDB: the tables are append-mostly and read whole (a farm x date table, a
ledger of items, alert history); Parquet files are columnar, compressed, readable by pandas,
geopandas, DuckDB, Spark or Excel-adjacent tools without agrisat, and need no server and no
extra dependency. Atomicity comes from the layout, not from a database engine:

- every write goes to a new part file (a temporary name, then ``os.replace``);
- ``manifest.json`` lists the parts that make up each table and is replaced last, atomically;
- readers read the manifest once and then only the parts it lists, so they see the old state
  or the new one, never a mix; a crash before the manifest swap leaves unreferenced parts that
  the next commit deletes.

Part names are content hashes, so the same data written twice gives the same bytes and names
(reruns are byte-identical).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .atomic import _publish, _temporary, atomic_path, atomic_write_bytes, atomic_write_text
from .errors import StoreError, WorkdirLockedError, unreadable_part

__all__ = [
    "TABLE_KEYS",
    "Store",
    "Transaction",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "frame_fingerprint",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1

#: Primary keys: when parts overlap, the row from the latest part wins.
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "observations": ("farm_id", "date"),
    "ledger": ("item_id",),
    "runs": ("run_id",),
    "alerts": ("alert_id", "run_date"),
    "farms": ("farm_id",),
    "catchup": ("set", "item_id"),
}

#: Compact a table into one part when it has more parts than this.
MAX_PARTS = 64


#: Row-group size of the store's Parquet parts: a large frame is converted to Arrow and
#: written this many rows at a time, so a write never holds a whole Arrow copy of it (at
#: 100,000 farms a month of looks is 440,000 rows x 64 columns, ~220 MB). A frame of at most
#: this many rows is written in one piece, byte for byte as ``DataFrame.to_parquet`` writes it.
SLICE_ROWS = 131072


def _write_parquet(
    df: pd.DataFrame, target: Any, *, rows: np.ndarray | None = None, slice_rows: int = SLICE_ROWS
) -> None:
    """``df`` (only the positions ``rows``, in that order, when given) as zstd Parquet to a
    path or buffer (GeoParquet for a GeoDataFrame).

    A plain frame of more than ``slice_rows`` rows is written in row groups of
    ``slice_rows`` rows, each converted from its own slice: the file reads back as the same
    frame, and its bytes depend only on the rows written (the content hash stays
    deterministic).
    """
    if hasattr(df, "geometry") and "geometry" in df.columns:
        part = df if rows is None else df.take(rows)
        part.to_parquet(target, index=False, compression="zstd")  # GeoParquet via geopandas
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = len(df) if rows is None else len(rows)
    if n <= slice_rows:
        part = df if rows is None else df.take(rows)
        part.to_parquet(target, index=False, compression="zstd", engine="pyarrow")
        return
    # one schema for every slice: a slice whose object column is all None would otherwise
    # infer a null type of its own
    schema = pa.Schema.from_pandas(df, preserve_index=False)
    with pq.ParquetWriter(target, schema, compression="zstd") as writer:
        for i in range(0, n, slice_rows):
            part = (
                df.iloc[i : i + slice_rows] if rows is None else df.take(rows[i : i + slice_rows])
            )
            writer.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False))
            del part


def frame_fingerprint(df: pd.DataFrame) -> str:
    """A digest of a table's columns, dtypes, index, values and geometries (as WKB).

    Cheaper than writing the table: a caller that replaces a table every run with the same
    content (the farms of an unchanged book) compares fingerprints and skips the write.
    """
    h = hashlib.blake2b(digest_size=20)
    h.update(repr([(str(c), str(t)) for c, t in df.dtypes.items()]).encode("utf-8"))
    geo = [c for c, t in df.dtypes.items() if str(t) == "geometry"]
    plain = df.drop(columns=geo)
    h.update(pd.util.hash_pandas_object(plain, index=True).to_numpy().tobytes())
    for c in geo:
        import shapely

        col = df[c]
        h.update(str(getattr(col, "crs", None)).encode("utf-8"))
        wkbs = shapely.to_wkb(col.values)
        h.update(repr([0 if w is None else len(w) for w in wkbs]).encode("ascii"))
        h.update(b"".join(w for w in wkbs if w is not None))
    return h.hexdigest()


@dataclass
class Transaction:
    """Pending changes; committed by :meth:`Store.transaction` when the block exits cleanly.

    With ``staging`` (the store it will be committed to), each table given to
    :meth:`replace` or :meth:`append` is written at once as a part file that no manifest
    references yet, and only its name is kept: a transaction of many large tables does not
    hold them all in memory until the commit. A crash before the commit leaves unreferenced
    parts, which the next commit deletes.
    """

    appends: dict[str, list[pd.DataFrame | str]] = field(default_factory=dict)
    replaces: dict[str, pd.DataFrame | str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    staging: Store | None = None

    def append(self, table: str, df: pd.DataFrame, *, rows: np.ndarray | None = None) -> None:
        """Add rows to ``table`` (rows with an existing key supersede the old ones).

        ``rows``: only these positions of ``df`` (a staged write takes them slice by slice
        instead of copying them out first).
        """
        n = len(df) if rows is None else len(rows)
        if n:
            part = self._stage(table, df, rows)
            self.appends.setdefault(table, []).append(part)

    def replace(self, table: str, df: pd.DataFrame, *, rows: np.ndarray | None = None) -> None:
        """Replace ``table`` whole (with the positions ``rows`` of ``df`` when given)."""
        self.replaces[table] = self._stage(table, df, rows)
        self.appends.pop(table, None)

    def staged_manifest(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """``manifest`` with the tables this transaction staged as parts (not yet committed):
        what :meth:`Store.commit` will make of them, for reading them back before the commit
        (tables held in memory, not staged, are left out)."""
        tables = {k: list(v) for k, v in manifest.get("tables", {}).items()}
        for table, part in self.replaces.items():
            if isinstance(part, str):
                tables[table] = [part]
        for table, parts in self.appends.items():
            cur = tables.setdefault(table, [])
            cur.extend(p for p in parts if isinstance(p, str) and p not in cur)
        return {**manifest, "tables": tables}

    def _stage(self, table: str, df: pd.DataFrame, rows: np.ndarray | None) -> pd.DataFrame | str:
        if self.staging is not None:
            return self.staging._write_part(table, df, rows=rows)
        return df if rows is None else df.take(rows).reset_index(drop=True)


class Store:
    """Parquet tables under ``workdir/store`` with an atomic manifest.

    Parameters
    ----------
    workdir
        The run's working folder; created if missing.
    """

    def __init__(self, workdir: str | os.PathLike[str]) -> None:
        self.workdir = Path(workdir)
        self.root = self.workdir / "store"
        self.manifest_path = self.root / "manifest.json"

    @property
    def weights_cache_dir(self) -> Path:
        """Folder of the coverage-weights cache (:mod:`agrisat.zonal.cache`); not a table."""
        return self.root / "cache" / "weights"

    @property
    def book_cache_dir(self) -> Path:
        """Folder of the checked book kept between runs (:mod:`agrisat.book.cache`)."""
        return self.root / "cache" / "book"

    # -- reading -------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        """The committed manifest (an empty one for a new store)."""
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"format": FORMAT_VERSION, "tables": {}, "meta": {}}
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(
                f"store manifest {self.manifest_path} is unreadable ({exc}); restore it from a "
                "backup or start a new workdir"
            ) from None
        if data.get("format") != FORMAT_VERSION:
            raise StoreError(
                f"store {self.root} has format {data.get('format')!r}, this agrisat reads "
                f"{FORMAT_VERSION}; use a new workdir or the matching agrisat version"
            )
        return data

    def exists(self) -> bool:
        """True when a manifest has been committed."""
        return self.manifest_path.exists()

    def parts(self, table: str, manifest: dict[str, Any] | None = None) -> list[Path]:
        """Paths of the parts of ``table`` in commit order."""
        m = manifest if manifest is not None else self.manifest()
        return [self.root / p for p in m["tables"].get(table, [])]

    def read(self, table: str, *, manifest: dict[str, Any] | None = None) -> pd.DataFrame:
        """Read a table whole (latest row per key). Empty DataFrame when the table is absent."""
        paths = self.parts(table, manifest)
        if not paths:
            return pd.DataFrame()
        frames = []
        for p in paths:
            try:
                frames.append(_read_part(p))
            except (OSError, ValueError) as exc:
                raise unreadable_part(p, table, exc) from None
        df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        keys = TABLE_KEYS.get(table)
        if keys and len(frames) > 1 and all(k in df.columns for k in keys):
            df = df.drop_duplicates(list(keys), keep="last").reset_index(drop=True)
        return df

    # -- writing -------------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Collect changes; on clean exit write the parts, then swap the manifest atomically."""
        txn = Transaction()
        yield txn
        self.commit(txn)

    def commit(self, txn: Transaction) -> None:
        """Write ``txn``'s parts and the new manifest (written last, atomically)."""
        manifest = self.manifest()
        tables: dict[str, list[str]] = {k: list(v) for k, v in manifest["tables"].items()}
        for table, df in txn.replaces.items():
            tables[table] = [df if isinstance(df, str) else self._write_part(table, df)]
        for table, parts in txn.appends.items():
            names = [p for p in parts if isinstance(p, str)]
            frames = [p for p in parts if not isinstance(p, str)]
            if frames:
                df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
                names.append(self._write_part(table, df))
            # parts are named by content: rows equal to an earlier part's come back as that
            # part, which moves to the end -- later parts win per key, and the rows appended
            # now must win over what was appended since (a value, a no_data row, the value
            # again), not keep the place they had
            again = set(names)
            current = [n for n in tables.get(table, []) if n not in again]
            current.extend(dict.fromkeys(names))
            tables[table] = current
            if len(current) > MAX_PARTS:
                tables[table] = [self._compact(table, current)]
        new = {
            "format": FORMAT_VERSION,
            "tables": tables,
            "meta": {**manifest.get("meta", {}), **txn.meta},
        }
        with self._writing():
            atomic_write_text(self.manifest_path, json.dumps(new, indent=1, sort_keys=True))
        self._collect_garbage(new)

    def _write_part(self, table: str, df: pd.DataFrame, *, rows: np.ndarray | None = None) -> str:
        """Write ``df`` (the positions ``rows`` of it when given) as a part named by its
        content's digest; returns the name.

        The Parquet file is written straight to a temporary file and hashed from there: a
        large part is never held as bytes in memory beside the frame it comes from.
        """
        with self._writing(), _temporary(self.root / table, f".{table}.", ".tmp.parquet") as tmp:
            _write_parquet(df, tmp, rows=rows)
            digest = hashlib.sha256()
            with open(tmp, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 22), b""):
                    digest.update(block)
                os.fsync(fh.fileno())
            name = f"{table}/{digest.hexdigest()[:24]}.parquet"
            if not (self.root / name).exists():  # same content already stored: keep that
                _publish(tmp, self.root / name)
        return name

    def _compact(self, table: str, names: list[str]) -> str:
        m = {"tables": {table: names}}
        df = self.read(table, manifest=m)
        return self._write_part(table, df)

    def _collect_garbage(self, manifest: dict[str, Any]) -> None:
        """Delete part files no manifest references (left by a crash or by compaction)."""
        live = {self.root / p for parts in manifest["tables"].values() for p in parts}
        for path in self.root.glob("*/*.parquet"):
            if path not in live:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        for tmp in self.root.glob("**/.*.tmp*"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A full or read-only disk ends the run with a StoreError saying so (commits are all
        or nothing: what was committed stays, and a rerun finishes the job)."""
        try:
            yield
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                what = "no space left on the disk; free space and rerun (nothing is lost)"
            elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                what = f"it is not writable ({exc.strerror}); a run must write there"
            else:
                raise
            raise StoreError(f"cannot write the store of {self.workdir}: {what}") from None

    # -- locking -------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the workdir's OS file lock; a second holder gets :class:`WorkdirLockedError`."""
        from filelock import FileLock, Timeout

        if self.workdir.exists() and not self.workdir.is_dir():
            raise StoreError(f"--workdir {self.workdir} is a file; give a folder")
        fl = FileLock(str(self.workdir / ".agrisat.lock"), timeout=0)
        try:
            with self._writing():  # read-only: exports and the notebook API still work
                self.workdir.mkdir(parents=True, exist_ok=True)
                fl.acquire()
        except Timeout:
            raise WorkdirLockedError(
                f"another agrisat run is using {self.workdir}; wait for it to finish "
                "(or use another --workdir)"
            ) from None
        try:
            yield
        finally:
            fl.release()


def _read_part(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    meta = pq.read_metadata(path).metadata or {}
    if b"geo" in meta:
        import geopandas as gpd

        return gpd.read_parquet(path)
    return pd.read_parquet(path)
