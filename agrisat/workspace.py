"""The notebook API: one object over a workdir's store, for analysts.

``agrisat.open(workdir)`` returns a :class:`Workspace`: the farms, the observations as an
xarray Dataset (farm x time), the alerts, their history, the roll-up by loan/borrower/region,
the run records, a per-farm chart and image chips read back from the scenes.

Scene access (for chips) needs the STAC catalog the run read. The store records item ids only,
so the catalog comes from, in order: the ``catalog=`` argument, a ``catalog`` column of the
latest run record (when the pipeline persists it), or the demo's layout ``<workdir>/archive/
catalog/catalog.json``. Without one, everything but :meth:`Workspace.chips` works.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr

from .errors import ConfigError, StoreError
from .monitor import alert_history, latest_alerts
from .observations import read_observations
from .rollup import rollup
from .store import Store

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .chips import ChipSet

__all__ = [
    "LOOK_TOLERANCE_DAYS",
    "Workspace",
    "observations_dataset",
    "open_workspace",
    "resolve_catalog",
]

log = logging.getLogger(__name__)

#: farm attributes carried as coordinates along ``farm`` in the observations Dataset
FARM_COORDS = ("loan_id", "borrower_id", "crop", "region", "exposure")
#: how far (days) the look picked for a wanted date may be (:meth:`Workspace.pick_looks`):
#: a few Sentinel-2 revisits; farther, the look shows another stage of the season
LOOK_TOLERANCE_DAYS = 30


def _as_day(value: Any) -> pd.Timestamp:
    """``value`` as a day, or a :class:`~agrisat.errors.ConfigError` naming it."""
    try:
        day = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{value!r} is not a date: use YYYY-MM-DD") from exc
    if pd.isna(day):
        raise ConfigError(f"{value!r} is not a date: use YYYY-MM-DD")
    return day.normalize()


def resolve_catalog(
    workdir: str | os.PathLike[str], runs: pd.DataFrame | None = None
) -> str | None:
    """The catalog a workdir's runs read, when it can be known without the caller's help.

    Order: the ``catalog`` column of the latest run record (non-empty), then the demo layout
    ``<workdir>/archive/catalog/catalog.json``. None when neither exists.
    """
    if runs is not None and len(runs) and "catalog" in runs.columns:
        order = runs.sort_values("finished") if "finished" in runs.columns else runs
        known = [str(c) for c in order["catalog"].dropna() if str(c)]
        if known:
            return known[-1]
    demo = Path(workdir) / "archive" / "catalog" / "catalog.json"
    return str(demo) if demo.exists() else None


def observations_dataset(
    observations: pd.DataFrame, farms: pd.DataFrame | None = None
) -> xr.Dataset:
    """The observations table as a Dataset with dims ``farm`` x ``time``.

    Every numeric column becomes a float variable (NaN where the farm has no row that date);
    ``status`` and ``item_id`` become string variables (``""`` where no row). Farm attributes
    from ``farms`` (loan, borrower, crop, region, exposure) become coordinates along ``farm``.
    """
    obs = observations
    farm_ids = pd.Index(sorted(obs["farm_id"].astype(str).unique()), name="farm")
    times = pd.DatetimeIndex(sorted(pd.to_datetime(obs["date"]).unique()), name="time")
    fi = farm_ids.get_indexer(obs["farm_id"].astype(str))
    ti = times.get_indexer(pd.to_datetime(obs["date"]))
    shape = (len(farm_ids), len(times))
    data: dict[str, Any] = {}
    for col in obs.columns:
        if col in ("farm_id", "date"):
            continue
        values = obs[col]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            arr = np.full(shape, np.nan)
            arr[fi, ti] = values.to_numpy(dtype=float, na_value=np.nan)
        else:
            arr = np.full(shape, "", dtype=object)
            arr[fi, ti] = values.astype(object).where(values.notna(), "").to_numpy()
        data[col] = (("farm", "time"), arr)
    ds = xr.Dataset(data, coords={"farm": farm_ids.to_numpy(dtype=object), "time": times})
    if farms is not None and len(farms):
        book = pd.DataFrame(farms).drop_duplicates("farm_id").set_index("farm_id")
        book.index = book.index.astype(str)
        for col in FARM_COORDS:
            if col in book.columns:
                col_values = book[col].reindex(farm_ids)
                if col == "exposure":
                    ds = ds.assign_coords({col: ("farm", col_values.to_numpy(dtype=float))})
                else:
                    ds = ds.assign_coords(
                        {col: ("farm", col_values.astype(object).fillna("").to_numpy())}
                    )
    return ds


class Workspace:
    """An agrisat workdir, read-only, for notebooks and reports.

    Parameters
    ----------
    workdir
        A folder holding an agrisat store (after ``agrisat run`` or ``agrisat demo``).
    catalog
        The STAC catalog (API URL, static catalog path or URL) the runs read; only needed for
        :meth:`chips`. Default: see :func:`resolve_catalog`.
    calendars
        A crop-calendar TOML file (as for ``agrisat run``); default the built-in calendars.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        catalog: str | os.PathLike[str] | None = None,
        calendars: str | os.PathLike[str] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.store = Store(self.workdir)
        if not self.store.exists():
            raise StoreError(
                f"{self.workdir} holds no agrisat store; run `agrisat run` or `agrisat demo` "
                "first, or check the path"
            )
        self._catalog = str(catalog) if catalog is not None else None
        self.calendars_path = calendars
        self._scenes: Any = None

    def __repr__(self) -> str:
        return f"Workspace({str(self.workdir)!r}, farms={len(self.farms)})"

    # -- tables --------------------------------------------------------------------------
    @cached_property
    def farms(self) -> gpd.GeoDataFrame:
        """The validated loan book of the latest run (EPSG:4326), one row per farm."""
        df = self.store.read("farms")
        if df.empty:
            raise StoreError(f"{self.workdir} holds no farms table; run `agrisat run` first")
        return df.reset_index(drop=True)

    @cached_property
    def observations_table(self) -> pd.DataFrame:
        """The observations table as stored (one row per farm and date, ``date`` YYYY-MM-DD)."""
        return read_observations(self.workdir)

    def observations(
        self,
        *,
        farms: Sequence[str] | None = None,
        start: str | None = None,
        end: str | None = None,
    ) -> xr.Dataset:
        """Observations as an xarray Dataset with dims ``farm`` x ``time``.

        Parameters
        ----------
        farms
            Only these farm ids (default all); keeps memory small on large books.
        start, end
            Only dates in [start, end] (YYYY-MM-DD, inclusive).
        """
        obs = self.observations_table
        if farms is not None:
            obs = obs[obs["farm_id"].isin([str(f) for f in farms])]
        if start is not None:
            obs = obs[obs["date"] >= str(start)]
        if end is not None:
            obs = obs[obs["date"] <= str(end)]
        return observations_dataset(obs, self.farms)

    def alerts(self, status: str = "open") -> pd.DataFrame:
        """Alerts of the latest run: ``status`` ``open`` (new and ongoing) or ``all``."""
        if status not in ("open", "all"):
            raise ConfigError(f"status {status!r}: use 'open' or 'all'")
        return latest_alerts(self.store, status=status)

    def alert_history(self) -> pd.DataFrame:
        """Every run's alerts (``run_date`` first), oldest run first."""
        return alert_history(self.store)

    def rollup(self, *, open_only: bool = True) -> pd.DataFrame:
        """Exposure at risk by loan, borrower and region (see :func:`agrisat.alerts.rollup`),
        largest exposure at risk first within each level."""
        table = rollup(self.alerts("all"), self.farms, open_only=open_only)
        order = {"loan": 0, "borrower": 1, "region": 2}
        return (
            table.assign(_lvl=table["level"].map(order))
            .sort_values(["_lvl", "exposure_at_risk", "key"], ascending=[True, False, True])
            .drop(columns="_lvl")
            .reset_index(drop=True)
        )

    def runs(self) -> pd.DataFrame:
        """The run records, oldest first."""
        runs = self.store.read("runs")
        if len(runs) and "finished" in runs.columns:
            runs = runs.sort_values("finished", kind="mergesort").reset_index(drop=True)
        return runs

    @property
    def asof(self) -> pd.Timestamp | None:
        """The latest run's ``--end`` date (else the latest observation date)."""
        runs = self.runs()
        if len(runs) and "end" in runs.columns:
            ends = [e for e in runs["end"].dropna().astype(str) if e]
            if ends:
                return pd.Timestamp(max(ends))
        obs = self.observations_table
        return pd.Timestamp(obs["date"].max()) if len(obs) else None

    # -- charts and chips ----------------------------------------------------------------
    def farm_alerts(self, farm_id: str) -> pd.DataFrame:
        """Every alert the farm ever had (latest state of each ``alert_id``)."""
        hist = self.alert_history()
        if hist.empty:
            return hist
        rows = hist[hist["farm_id"].astype(str) == str(farm_id)]
        return rows.drop_duplicates("alert_id", keep="last").reset_index(drop=True)

    def plot_farm(self, farm_id: str, **options: Any) -> Figure:
        """The farm's index series against its own history and its peers; see
        :func:`agrisat.plots.plot_farm` for ``options`` (``index``, ``start``, ``end``, ``ax``)."""
        from .calendar import load_calendars
        from .plots import plot_farm

        options.setdefault("end", self.asof)
        return plot_farm(
            self.observations_table,
            self.farms,
            str(farm_id),
            alerts=self.farm_alerts(farm_id),
            calendars=load_calendars(
                None if self.calendars_path is None else Path(self.calendars_path)
            ),
            **options,
        )

    @property
    def catalog(self) -> str | None:
        """The catalog used for chips, or None when unknown (see :func:`resolve_catalog`)."""
        if self._catalog is None:
            self._catalog = resolve_catalog(self.workdir, self.runs())
        return self._catalog

    def chips(
        self,
        farm_id: str,
        dates: Sequence[str] | str,
        *,
        pad_m: float = 60.0,
        show: bool = True,
        max_days: int | None = LOOK_TOLERANCE_DAYS,
    ) -> ChipSet:
        """True-colour and NDVI chips of a farm on ``dates``, read from the scenes' COGs.

        Each date picks the farm's observation of that day (else the nearest observed day, at
        most ``max_days`` away; see :meth:`pick_looks`) and the STAC item that observation came
        from. Returns a :class:`agrisat.chips.ChipSet` (arrays + ``figure``; ``show=False``
        skips drawing).

        Raises
        ------
        ConfigError
            No catalog is known (pass ``agrisat.open(workdir, catalog=...)``), the farm id is
            not in the book, a date is not a date, or the farm has no observation within
            ``max_days`` of one.
        """
        from .chips import SceneIndex, load_chips

        if self.catalog is None:
            raise ConfigError(
                f"no STAC catalog known for {self.workdir}: open it with "
                "agrisat.open(workdir, catalog=<the catalog the run read>) to read chips"
            )
        farm = self._farm_row(farm_id)
        wanted = [dates] if isinstance(dates, str) else list(dates)
        picks = self.pick_looks(farm_id, wanted, max_days=max_days)
        if self._scenes is None:
            self._scenes = SceneIndex(self.catalog)
        return load_chips(farm, picks, self._scenes, pad_m=pad_m, draw=show)

    def pick_looks(
        self,
        farm_id: str,
        dates: Sequence[str],
        *,
        max_days: int | None = LOOK_TOLERANCE_DAYS,
    ) -> pd.DataFrame:
        """For each wanted date, the farm's observation of that day or the nearest one.

        Parameters
        ----------
        farm_id
            The farm.
        dates
            Wanted dates (``YYYY-MM-DD`` or anything :class:`pandas.Timestamp` reads).
        max_days
            The nearest observation may be at most this many days from a wanted date (None: any
            distance). A date beyond it is refused rather than answered with a look of another
            season or year.

        Returns
        -------
        pandas.DataFrame
            ``wanted``, ``date``, ``item_id``, ``status``, ``clear_fraction``, ``days_off``
            (days from the wanted date to the look's).

        Raises
        ------
        ConfigError
            A date that is not a date, a farm without observations, or no observation within
            ``max_days`` of a wanted date (the message names the nearest observed date).
        """
        days = [_as_day(d) for d in dates]
        obs = self.observations_table
        rows = obs[obs["farm_id"].astype(str) == str(farm_id)]
        rows = rows[rows["item_id"].astype(str) != ""]
        if rows.empty:
            raise ConfigError(f"farm {farm_id} has no observation in {self.workdir}")
        when = pd.to_datetime(rows["date"]).to_numpy()
        out = []
        for wanted, w in zip(dates, days, strict=True):
            gap = np.abs(when - w.to_datetime64())
            i = int(np.argmin(gap))
            r = rows.iloc[i]
            off = int(gap[i] // np.timedelta64(1, "D"))
            if max_days is not None and off > max_days:
                raise ConfigError(
                    f"farm {farm_id} has no observation within {max_days} days of {wanted!r}: "
                    f"the nearest is {pd.Timestamp(r['date']):%Y-%m-%d} ({off} days away); "
                    f"its observations run {pd.Timestamp(when.min()):%Y-%m-%d} to "
                    f"{pd.Timestamp(when.max()):%Y-%m-%d} (or pass max_days=None)"
                )
            out.append(
                {
                    "wanted": str(w.date()),
                    "date": str(r["date"]),
                    "item_id": str(r["item_id"]),
                    "status": str(r["status"]),
                    "clear_fraction": float(r["clear_fraction"]),
                    "days_off": off,
                }
            )
        return pd.DataFrame(out)

    def _farm_row(self, farm_id: str) -> gpd.GeoSeries:
        hit = self.farms[self.farms["farm_id"].astype(str) == str(farm_id)]
        if hit.empty:
            raise ConfigError(f"farm {farm_id!r} is not in the book of {self.workdir}")
        return hit.iloc[0]


def open_workspace(
    workdir: str | os.PathLike[str] = "demo-out",
    *,
    catalog: str | os.PathLike[str] | None = None,
    calendars: str | os.PathLike[str] | None = None,
) -> Workspace:
    """Open an agrisat workdir for analysis (exported as ``agrisat.open``).

    Parameters
    ----------
    workdir
        The folder given as ``--workdir`` to ``agrisat run`` / ``agrisat demo``.
    catalog
        The STAC catalog the runs read (only needed for chips); see :class:`Workspace`.
    calendars
        A crop-calendar TOML file, when the runs used one.

    Examples
    --------
    >>> import agrisat
    >>> ws = agrisat.open("demo-out")            # doctest: +SKIP
    >>> ws.rollup().query("level == 'loan'").head()  # doctest: +SKIP
    """
    return Workspace(workdir, catalog=catalog, calendars=calendars)
