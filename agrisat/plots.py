"""Charts for analysts: a farm's index series against its own history, its peers and its alerts.

The bands drawn here are *display* summaries, computed from the observations table alone so a
reader can check them by hand: the own-history band is the median ± 1.4826·MAD of the farm's
clear looks of earlier seasons within ``window_days`` of the same day of year; the peers' band
is the inter-quartile range of the clear looks of farms of the same crop and region on the same
date. (Detection uses its own, more careful baselines; see :mod:`agrisat.anomaly`.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .calendar import Calendar, default_calendars
from .errors import ConfigError
from .i18n import check_lang, t
from .series import clear_looks

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "HAZARD_COLORS",
    "SEVERITY_COLORS",
    "harvest_windows",
    "history_band",
    "peer_band",
    "plot_farm",
]

SEVERITY_COLORS: dict[str, str] = {
    "critical": "#c62828",
    "warning": "#ef6c00",
    "watch": "#f9a825",
}
HAZARD_COLORS: dict[str, str] = {
    "drought": "#b26a00",
    "flood": "#1565c0",
    "abrupt_loss": "#6a1b9a",
    "no_planting": "#4e342e",
    "stale_data": "#546e7a",
}
_YEAR = 365.25


def history_band(
    dates: pd.Series | pd.DatetimeIndex,
    values: np.ndarray,
    grid: pd.DatetimeIndex,
    *,
    window_days: int = 15,
    min_gap_days: int = 300,
    min_looks: int = 2,
) -> pd.DataFrame:
    """Own-history band on ``grid``: median and 1.4826·MAD of earlier seasons' looks.

    For each grid date ``d``, the looks at least ``min_gap_days`` before ``d`` whose day of
    year lies within ``window_days`` of ``d``'s count (fewer than ``min_looks``: NaN).

    Returns
    -------
    pandas.DataFrame
        ``date``, ``median``, ``lo``, ``hi`` (median ∓ spread), ``n``.
    """
    t = pd.DatetimeIndex(pd.to_datetime(dates)).to_numpy(dtype="datetime64[D]").astype(float)
    v = np.asarray(values, dtype=float)
    g = grid.to_numpy(dtype="datetime64[D]").astype(float)
    ok = np.isfinite(v)
    t, v = t[ok], v[ok]
    lag = g[:, None] - t[None, :]
    phase = np.mod(lag, _YEAR)
    phase = np.minimum(phase, _YEAR - phase)
    mask = (lag >= min_gap_days) & (phase <= window_days)
    vals = np.where(mask, v[None, :], np.nan)
    n = mask.sum(axis=1)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(vals, axis=1) if vals.shape[1] else np.full(len(g), np.nan)
            mad = (
                np.nanmedian(np.abs(vals - med[:, None]), axis=1)
                if vals.shape[1]
                else np.full(len(g), np.nan)
            )
    spread = 1.4826 * mad
    med = np.where(n >= min_looks, med, np.nan)
    spread = np.where(n >= min_looks, spread, np.nan)
    return pd.DataFrame(
        {"date": grid, "median": med, "lo": med - spread, "hi": med + spread, "n": n}
    )


def peer_band(
    observations: pd.DataFrame,
    farms: pd.DataFrame,
    farm_id: str,
    *,
    index: str = "ndvi",
    min_peers: int = 3,
) -> pd.DataFrame:
    """Peers' inter-quartile range per date: clear looks of the other farms of the same crop
    and region (region ignored when the farm has none) on the farm's observation dates.

    Returns ``date``, ``q25``, ``q50``, ``q75``, ``n`` (dates with fewer than ``min_peers``
    clear peer looks are left out).
    """
    book = pd.DataFrame(farms).set_index(farms["farm_id"].astype(str))
    me = book.loc[str(farm_id)]
    same = book["crop"].astype(str) == str(me["crop"])
    region = str(me.get("region", "") or "") if "region" in book.columns else ""
    if region and region != "nan":
        same &= book["region"].astype(str) == region
    peers = set(book.index[same]) - {str(farm_id)}
    looks = clear_looks(observations[observations["farm_id"].isin(peers)], index=index)
    col = f"{index}_mean"
    if looks.empty:
        return pd.DataFrame(columns=["date", "q25", "q50", "q75", "n"])
    g = looks.groupby("date")[col]
    out = pd.DataFrame(
        {"q25": g.quantile(0.25), "q50": g.median(), "q75": g.quantile(0.75), "n": g.count()}
    )
    out = out[out["n"] >= min_peers].reset_index()
    return out


def harvest_windows(
    crop: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    calendars: Mapping[str, Calendar] | None = None,
) -> list[tuple[pd.Timestamp, pd.Timestamp, str]]:
    """Harvest windows of ``crop``'s seasons overlapping [start, end]: (first, last, season)."""
    cals = default_calendars() if calendars is None else calendars
    cal = cals.get(str(crop))
    if cal is None:
        return []
    out = []
    for season in cal.seasons:
        (m0, d0), (m1, d1) = season.harvest
        for year in range(start.year - 1, end.year + 1):
            lo = pd.Timestamp(year=year, month=m0, day=d0)
            hi = pd.Timestamp(year=year if (m1, d1) >= (m0, d0) else year + 1, month=m1, day=d1)
            if hi >= start and lo <= end:
                out.append((max(lo, start), min(hi, end), season.name))
    return sorted(out)


def plot_farm(
    observations: pd.DataFrame,
    farms: pd.DataFrame,
    farm_id: str,
    *,
    alerts: pd.DataFrame | None = None,
    index: str = "ndvi",
    start: Any = None,
    end: Any = None,
    days: int = 400,
    calendars: Mapping[str, Calendar] | None = None,
    ax: Axes | None = None,
    figsize: tuple[float, float] = (11.0, 4.4),
    title: str | None = None,
    lang: str = "en",
) -> Figure:
    """Draw a farm's index series with its own-history band, peers' band, harvest windows and
    alerts.

    Parameters
    ----------
    observations, farms
        The observations table and the book (``farm_id``, ``crop``, ``region``...).
    farm_id
        The farm to draw.
    alerts
        The farm's alerts (``alert_id``, ``hazard``, ``severity``, ``onset_date``, ``status``);
        each gets an onset line and a label.
    index
        Which index (``<index>_mean`` must be a column).
    start, end
        Date range; default the ``days`` days up to the last observation (or ``end``).
    calendars
        Crop calendars for the harvest windows (default the built-in ones).
    ax
        Draw into this Axes instead of a new figure.
    lang
        Language of the labels (``"en"`` or ``"zh"``). Chinese labels need a CJK font where the
        figure is rendered: save it as SVG with ``svg.fonttype: none`` (text stays text and the
        viewer's fonts draw it), as the HTML report does.

    Returns
    -------
    matplotlib.figure.Figure
        Artists carry ``gid``s for programmatic checks: ``looks`` (clear looks), ``gaps:cloudy``
        and ``gaps:no_data`` (gap markers), ``band:history``, ``band:peers``, ``harvest``
        (one per window) and ``alert:<alert_id>`` (one onset line per alert).
    """
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    check_lang(lang)
    col = f"{index}_mean"
    if observations.empty:  # before "index not computed": no index column is the symptom
        raise ConfigError(
            "no observations yet in this workdir: no run has found a scene of its farms "
            "(check the catalog, collection and dates the runs read)"
        )
    if col not in observations.columns:
        raise ConfigError(f"index {index!r} was not computed in this workdir (no {col} column)")
    book = farms[farms["farm_id"].astype(str) == str(farm_id)]
    if book.empty:
        raise ConfigError(f"farm {farm_id!r} is not in the book")
    farm = book.iloc[0]
    rows = observations[observations["farm_id"].astype(str) == str(farm_id)].copy()
    rows["date"] = pd.to_datetime(rows["date"])
    last = rows["date"].max() if len(rows) else pd.Timestamp.now().normalize()
    end_ts = pd.Timestamp(end) if end is not None else last
    start_ts = pd.Timestamp(start) if start is not None else end_ts - pd.Timedelta(days=days)
    if ax is None:
        # fixed margins (legend on the right) rather than a layout engine: it draws once, which
        # matters when a report renders dozens of charts
        fig = Figure(figsize=figsize)
        left, bottom = 0.6 / figsize[0], 0.55 / figsize[1]
        right = 1.0 - 2.3 / figsize[0]
        ax = fig.add_axes((left, bottom, right - left, 1.0 - 0.35 / figsize[1] - bottom))
    else:
        fig = ax.get_figure()  # type: ignore[assignment]
    ax.set_xlim(start_ts, end_ts)
    ymin, ymax = -0.12, 1.0
    ax.set_ylim(ymin, ymax)

    for i, (lo, hi, _season) in enumerate(
        harvest_windows(farm["crop"], start_ts, end_ts, calendars)
    ):
        ax.axvspan(lo, hi, color="#d7ccc8", alpha=0.45, lw=0, gid="harvest",
                   label=t("chart.harvest", lang) if i == 0 else None)  # fmt: skip

    looks = clear_looks(rows, index=index)
    grid = pd.date_range(start_ts, end_ts, freq="5D")
    hist = history_band(looks["date"], looks[col].to_numpy(), grid)
    if hist["median"].notna().any():
        ax.fill_between(hist["date"], hist["lo"], hist["hi"], color="#90a4ae", alpha=0.35,
                        lw=0, gid="band:history", label=t("chart.history", lang))  # fmt: skip
        ax.plot(hist["date"], hist["median"], color="#607d8b", lw=1, ls="--")
    peers = peer_band(observations, farms, farm_id, index=index)
    if len(peers):
        peers = peers[(peers["date"] >= start_ts) & (peers["date"] <= end_ts)]
    if len(peers):
        ax.fill_between(peers["date"], peers["q25"], peers["q75"], color="#81c784", alpha=0.35,
                        lw=0, gid="band:peers", label=t("chart.peers", lang))  # fmt: skip

    shown = looks[(looks["date"] >= start_ts) & (looks["date"] <= end_ts)]
    ax.plot(shown["date"], shown[col], color="#1b5e20", lw=1.2, alpha=0.8)
    ax.plot(shown["date"], shown[col], "o", ms=4, color="#1b5e20", gid="looks",
            label=t("chart.look", lang).format(index=index.upper()))  # fmt: skip
    inwin = rows[(rows["date"] >= start_ts) & (rows["date"] <= end_ts)]
    gap_y = ymin + 0.03
    for status, marker, color, label in (
        ("cloudy", "|", "#78909c", t("chart.cloudy", lang)),
        ("no_data", "x", "#b0bec5", t("chart.no_data", lang)),
    ):
        d = inwin.loc[inwin["status"].astype(str) == status, "date"]
        if len(d):
            ax.plot(d, np.full(len(d), gap_y), marker, ms=7, color=color, ls="none",
                    gid=f"gaps:{status}", label=label)  # fmt: skip

    n_alerts = 0
    if alerts is not None and len(alerts):
        for _, a in alerts.sort_values("onset_date").iterrows():
            onset = pd.Timestamp(a["onset_date"])
            if pd.isna(onset):
                continue
            color = SEVERITY_COLORS.get(str(a["severity"]), "#c62828")
            ls = ":" if str(a.get("status", "")) == "resolved" else "-"
            ax.axvline(onset, color=color, lw=1.6, ls=ls, gid=f"alert:{a['alert_id']}")
            if lang == "en":  # the codes analysts filter on
                label = f"{a['hazard']} · {a['severity']}"
            else:
                label = f"{t('hazard.' + str(a['hazard']), lang)} · "
                label += t("severity." + str(a["severity"]), lang)
            if str(a.get("status", "")) == "resolved":
                label += t("chart.resolved", lang)
            # labels near the right edge go to the left of their line, so they stay inside
            right = (onset - start_ts) > 0.7 * (end_ts - start_ts)
            ax.annotate(label, xy=(onset, ymax), xytext=(-3 if right else 3, -4 - 12 * (n_alerts % 3)),
                        textcoords="offset points", ha="right" if right else "left", va="top",
                        fontsize=8, color=color, fontweight="bold",
                        bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})  # fmt: skip
            n_alerts += 1
    ax.set_ylabel(index.upper())
    ax.grid(True, axis="y", color="#eceff1", lw=0.8)
    ax.xaxis.set_major_locator(mdates.MonthLocator())
    if lang == "zh":
        ax.xaxis.set_major_formatter(
            FuncFormatter(lambda x, _pos: f"{mdates.num2date(x):%-m}月\n{mdates.num2date(x):%Y}")
        )
    else:
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%b\n%Y"))
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    region = farm.get("region", "")
    ax.set_title(
        title
        or f"{farm_id} · {t('crop.' + str(farm['crop']), lang) if lang != 'en' else farm['crop']}"
        f" · {region} · {t('chart.loan', lang)} {farm['loan_id']} · {t('chart.exposure', lang)} "
        f"{float(farm['exposure']):,.0f}",
        loc="left",
        fontsize=10,
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return fig
