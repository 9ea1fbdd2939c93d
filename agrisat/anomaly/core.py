"""Run all detectors: per-look classification, confirmation runs, and the table for alerts."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..arrowops import code_labels, isin, label_codes, pick_labels
from ..calendar import Calendar
from .carry import Earlier
from .detectors import (
    detect_abrupt_loss,
    detect_drought,
    detect_flood,
    detect_no_planting,
    detect_stale,
    normal_looks,
    peer_state,
    season_peer,
)
from .features import look_features
from .losses import loss_looks
from .settings import DEFAULT_SETTINGS, HAZARD_PRIORITY, DetectSettings

__all__ = [
    "ANOMALY_COLUMNS",
    "LABEL_INPUTS",
    "anomaly_table",
    "assemble",
    "classify_looks",
    "confirmation_runs",
    "detect",
    "label_looks",
    "strong_drought",
    "window_rows",
]

log = logging.getLogger(__name__)

#: Columns of :func:`detect`'s result (one row per clear look, or per stale farm).
ANOMALY_COLUMNS: tuple[str, ...] = (
    "farm_id", "date", "hazard", "state", "score", "value", "expected", "index",
    "own_z", "own_deficit", "vci", "peer_median", "peer_z", "peer_n", "peer_level", "peer_state",
    "usual_gap", "water_fraction", "clear_fraction", "crop", "region", "stage",
    "onset", "run_looks", "run_hazard", "confirmed", "early",
)  # fmt: skip

#: The feature columns :func:`label_looks` reads (detectors, normal looks, peer state; from
#: an audit of the column names in ``detectors``, ``robust`` and this module). An incremental
#: night reads only these of the earlier looks it labels the new ones behind; a test checks
#: that the other feature columns do not change a label.
LABEL_INPUTS: tuple[str, ...] = (
    "farm_id", "date", "crop", "region", "value", "clear_fraction", "water_fraction", "ndwi",
    "stage", "season_id", "in_harvest", "watch", "green", "has_calendar", "prev_value",
    "prev_date", "expected", "expected_mid", "own_n", "vci", "hist_water", "own_min",
    "own_change_scale", "own_deficit", "own_z", "peer_level", "peer_median", "peer_n",
    "peer_water", "peer_ndwi", "peer_deficit_median", "peer_z", "peer_deficit", "usual_gap",
    "season_peer_z", "season_peer_deficit", "prev_peer_median", "season_max",
    "peer_season_max", "change_ref_n", "change_z", "moist_change_z", "change_rel",
    "peer_lagged", "peer_lagged_max",
)  # fmt: skip


def classify_looks(
    features: pd.DataFrame,
    settings: DetectSettings = DEFAULT_SETTINGS,
    *,
    carry: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Label each clear look and group anomalous looks into confirmation runs.

    Adds ``hazard`` (most specific detector that fired, else ``"none"``), ``score``,
    ``expected``, ``state`` (``anomalous``/``normal``/``borderline``), ``peer_state``, and
    for anomalous looks ``onset`` (first look of the run of consecutive anomalous clear looks),
    ``run_looks``, ``run_hazard`` (most specific hazard of the run so far) and ``confirmed``
    (the run has enough looks for its hazard; a no-planting gap of ``strong_factor`` times
    the threshold needs one look, so does a drought look with strong independent evidence,
    see :func:`strong_drought`; a single-look hazard on a look less clear than
    ``single_look_min_clear``, or of unknown clear share (NaN: ``unknown_sky_looks``), waits
    for a second look) and ``early`` (confirmed before the
    hazard's usual count of looks: the alert opens at ``watch``). Cloudy dates are not looks,
    so they neither break nor extend a run.

    ``carry`` continues runs from looks that are not in ``features`` (an incremental night):
    one row per farm with the ``run_looks``, ``onset`` and ``run_hazard`` of the farm's latest
    earlier look (``run_looks`` 0 when that look was not anomalous). A farm's first looks in
    ``features`` then extend that run exactly as if the earlier looks were present. Every
    column depends only on the farm's looks up to the look's date (causal).
    """
    return confirmation_runs(label_looks(features, settings), settings, carry=carry)


_STATES = np.array(["anomalous", "normal", "borderline"], dtype=object)


def label_looks(
    features: pd.DataFrame,
    settings: DetectSettings = DEFAULT_SETTINGS,
    *,
    carry: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The per-look part of :func:`classify_looks`: ``hazard``, ``score``, ``expected_h``,
    ``state`` and ``peer_state``.

    Detectors may read the farm's earlier rows in ``features`` (its previous two looks and
    whether they were losses, the previous look's season, its last sound look: see
    :mod:`.carry`). ``carry`` stands for
    the farm's looks before ``features`` (:func:`agrisat.anomaly.carry.label_carry` of
    them, one row per farm): the labels are then those ``features`` would get with those
    looks in front of it, so an incremental night labels only its new looks.
    """
    s = settings
    earlier = None if carry is None else Earlier.build(features, carry)
    # the flood and abrupt-loss looks once (with the looks keeping the loss of the look
    # before them): the drought detector's pace reads them too
    own, flood, abrupt, held = loss_looks(features, s, earlier=earlier)
    unsound = flood | abrupt | held[0]
    detectors = {
        "flood": lambda: detect_flood(features, s, mask=flood),
        "abrupt_loss": lambda: detect_abrupt_loss(
            features, s, earlier=earlier, mask=abrupt, own=own, held=held
        ),
        "no_planting": lambda: detect_no_planting(features, s),
        "drought": lambda: detect_drought(features, s, earlier=earlier, unsound=unsound),
    }
    # Copy-on-write (pandas 3): a shallow copy, so the new columns do not duplicate the table.
    f = features.copy(deep=False)
    f["hazard"] = "none"
    f["score"] = np.nan
    f["expected_h"] = np.nan
    for hazard in HAZARD_PRIORITY:
        rows = detectors[hazard]()
        free = rows.index[f.loc[rows.index, "hazard"] == "none"]
        f.loc[free, "hazard"] = hazard
        f.loc[free, "score"] = rows.loc[free, "score"]
        f.loc[free, "expected_h"] = rows.loc[free, "expected"]
    anom = f["hazard"] != "none"
    # labels picked by code from shared strings (fixed-width "<U10" arrays are 23 MB each
    # at 586,000 looks)
    code = np.where(anom.to_numpy(), 0, np.where(normal_looks(features, s).to_numpy(), 1, 2))
    f["state"] = pick_labels(_STATES, code, f.index)
    f["peer_state"] = peer_state(features)
    return f


def confirmation_runs(
    labelled: pd.DataFrame,
    settings: DetectSettings = DEFAULT_SETTINGS,
    *,
    carry: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The run part of :func:`classify_looks` on :func:`label_looks`' output."""
    s = settings
    f = labelled
    anom = f["hazard"] != "none"
    # Integer farm codes: the run groupbys below would otherwise factorise the string ids
    # of every look again and again.
    farm = pd.Series(f.groupby("farm_id", sort=False).ngroup().to_numpy(), index=f.index)
    run_id = (~anom).astype(int).groupby(farm, sort=False).cumsum()
    keys = [farm, run_id]
    run_looks = anom.astype(int).groupby(keys, sort=False).cumsum()
    # The onset of a run is its first look: a running minimum, so a look that is not
    # anomalous has none (a transform over the group would give it the onset of the run that
    # follows it, a value that depends on later looks).
    onset = f["date"].where(anom).groupby(keys, sort=False).cummin()
    rank = {h: len(HAZARD_PRIORITY) - i for i, h in enumerate(HAZARD_PRIORITY)}
    code = label_codes(f["hazard"], rank, 0)
    run_code = code.groupby(keys, sort=False).cummax()
    if carry is not None and len(carry):
        # Looks before the farm's first non-anomalous look here continue the carried run.
        c = carry.drop_duplicates("farm_id", keep="last").set_index("farm_id")
        # the ids matched once (a lookup per column hashed every look's id string again)
        at = c.index.get_indexer(f["farm_id"])
        c = c.reset_index(drop=True).reindex(at).set_axis(f.index)  # -1: NaN, as ``map``
        c_looks = c["run_looks"].fillna(0).astype(int)
        cont = anom & (run_id == 0) & (c_looks > 0)
        run_looks = run_looks + c_looks.where(cont, 0)
        c_onset = pd.to_datetime(c["onset"])
        onset = onset.where(~cont, c_onset)
        c_code = label_codes(c["run_hazard"], rank, 0)
        run_code = run_code.where(~cont, np.maximum(run_code, c_code))
    f["run_looks"] = run_looks.where(anom, 0)
    f["onset"] = onset.where(anom)
    inverse = {v: k for k, v in rank.items()}
    f["run_hazard"] = code_labels(run_code, inverse, "none").where(anom, "none")
    needed = label_codes(f["run_hazard"], {h: s.confirm_looks(h) for h in HAZARD_PRIORITY}, 1)
    # A no-planting gap to the same-date peers far beyond the threshold cannot be haze or a
    # shadow (the peers share the atmosphere): one clear look is enough.
    strong = (
        (s.strong_factor > 0)
        & (f["hazard"] == "no_planting")
        & (f["score"] >= s.strong_factor * s.no_planting_gap)
    )
    strong = strong | ((f["hazard"] == "drought") & strong_drought(f, s))
    usual = needed
    needed = np.where(strong, 1, needed)
    cf = f["clear_fraction"].astype(float).to_numpy()
    needed = np.where(cf < s.single_look_min_clear, np.maximum(needed, 2), needed)
    # NaN (sky unknown) fails no comparison: its own rule. A bare-soil value is no exception
    # (measured: sits-cerrado 6.2 -> 15.3, sits-modis 3.4 -> 5.8 false /100 farm-seasons)
    needed = np.where(np.isnan(cf), np.maximum(needed, s.unknown_sky_looks), needed)
    needed = np.where(suspect_sky(f, s), np.maximum(needed, 2), needed)
    f["confirmed"] = anom & (f["run_looks"] >= needed)
    # Confirmed before the hazard's usual count of looks: the alert opens at ``watch``.
    f["early"] = f["confirmed"] & (f["run_looks"] < usual)
    return f


def suspect_sky(f: pd.DataFrame, settings: DetectSettings = DEFAULT_SETTINGS) -> np.ndarray:
    """Looks on a date where the peers' median fell ``sky_peer_drop`` (relative) since the
    farm's previous look: haze, smoke, thin cloud or snow over the whole group, or a
    region-wide event that the next look will show again. One look is not enough there."""
    s = settings
    if s.sky_peer_drop <= 0 or "prev_peer_median" not in f.columns:
        return np.zeros(len(f), dtype=bool)
    with np.errstate(all="ignore"):
        fall = 1.0 - f["peer_median"] / f["prev_peer_median"]
    return (fall >= s.sky_peer_drop).fillna(False).to_numpy(dtype=bool)


def strong_drought(f: pd.DataFrame, settings: DetectSettings = DEFAULT_SETTINGS) -> pd.Series:
    """Drought looks whose evidence is strong enough to confirm on one clear look.

    Either the standing loss against the same-date peers is ``strong_z`` robust z in both the
    vegetation and the canopy-water index (two bands of one look that a haze, a shadow or a
    misregistered edge would not move together that far, judged against peers seen through the
    same sky) and the farm is now ``drought_peer_deficit`` below its peers; or the look is
    ``strong_z`` below its own history and its same-date peers at once (two references that
    fail in different ways), each by ``drought_deficit``. "Below its peers" is measured from
    the farm's usual standing against them at this time of year where its earlier seasons
    give one (``season_peer_*``). ``strong_z`` = 0 disables.
    """
    s = settings
    if s.strong_z <= 0:
        return pd.Series(False, index=f.index)

    def col(name: str) -> pd.Series:
        return f[name] if name in f.columns else pd.Series(np.nan, index=f.index)

    g = f.assign(**{c: col(c) for c in ("peer_z", "peer_deficit") if c not in f.columns})
    # Strength of evidence against the peers is what the look lost against them beyond the
    # farm's usual standing at this time of year (see season_peer; ungated: one-look
    # confirmation asks how far from its normal the farm is, not whether the peers share
    # it). A farm usually above its peers that falls below them lost more than the raw gap
    # says (seed7: two spring droughts confirmed 10 days earlier); one usually below them
    # needs more.
    peer_z, peer_deficit = season_peer(g, gated=False)
    two_bands = (
        (col("change_z") <= -s.strong_z)
        & (col("moist_change_z") <= -s.strong_z)
        & (peer_deficit >= s.drought_peer_deficit)
        # a usual standing read off one look is that look's noise, not a reference
        & (col("change_ref_n") >= s.strong_min_ref_looks)
    )
    two_refs = (
        (col("own_z") <= -s.strong_z)
        & (col("own_deficit") >= s.drought_deficit)
        & (peer_z <= -s.strong_z)
        & (peer_deficit >= s.drought_deficit)
    )
    return (two_bands | two_refs).fillna(False)


def assemble(
    classified: pd.DataFrame,
    farms: pd.DataFrame,
    observations: pd.DataFrame,
    *,
    asof: pd.Timestamp,
    settings: DetectSettings = DEFAULT_SETTINGS,
    calendars: Mapping[str, Calendar] | None = None,
) -> pd.DataFrame:
    """The rows handed to the alert lifecycle for a run on ``asof``.

    Every look within ``lookback_days`` of farms with an anomalous look in that window, the
    last ``tail_looks`` looks of every other farm (so recovery can be seen), and one
    ``stale_data`` row per stale farm. ``classified`` and ``observations`` must already be
    limited to dates <= ``asof``.
    """
    s = settings
    rows = window_rows(classified, asof=asof, settings=s)
    stale = detect_stale(
        classified, farms, observations, asof=asof, settings=s, calendars=calendars
    )
    return anomaly_table(rows, stale, farms, settings=s)


def window_rows(
    classified: pd.DataFrame, *, asof: pd.Timestamp, settings: DetectSettings = DEFAULT_SETTINGS
) -> pd.DataFrame:
    """The look rows :func:`assemble` hands on: every look within ``lookback_days`` of
    ``asof`` of farms with an anomalous look there, the last ``tail_looks`` of the others.

    Per farm: the rows of a subset of farms are those farms' rows of the whole book.
    """
    s = settings
    c = classified
    win = c[c["date"] >= asof - pd.Timedelta(days=s.lookback_days)]
    flagged = win.loc[win["state"] == "anomalous", "farm_id"].unique()
    tail = win.groupby("farm_id", sort=False).cumcount(ascending=False) < s.tail_looks
    rows = win[isin(win["farm_id"], flagged) | tail].copy()
    rows["score"] = rows["score"].astype(float)
    rows["expected"] = rows.get("expected_h", rows["expected"])
    rows["index"] = s.index
    return rows


def anomaly_table(
    rows: pd.DataFrame,
    stale: pd.DataFrame,
    farms: pd.DataFrame,
    *,
    settings: DetectSettings = DEFAULT_SETTINGS,
) -> pd.DataFrame:
    """Look rows (:func:`window_rows`) and stale rows (:func:`detect_stale`) as one table
    with :data:`ANOMALY_COLUMNS`, sorted by farm and date."""
    s = settings
    if len(stale):
        stale["state"] = "stale"
        stale["index"] = s.index
        stale["run_hazard"] = "stale_data"
        stale["run_looks"] = 0
        stale["confirmed"] = True
        stale["early"] = False
        attrs = farms.assign(farm_id=farms["farm_id"].astype(str)).set_index("farm_id")
        stale["crop"] = stale["farm_id"].map(attrs["crop"].astype(str))
        region = attrs["region"].fillna("").astype(str) if "region" in attrs.columns else None
        stale["region"] = stale["farm_id"].map(region) if region is not None else ""
    out = pd.concat([rows, stale], ignore_index=True) if len(stale) else rows
    for col in ANOMALY_COLUMNS:
        if col not in out.columns:
            out[col] = np.nan
    out = (
        out[list(ANOMALY_COLUMNS)]
        .sort_values(["farm_id", "date"], kind="stable")
        .reset_index(drop=True)
    )
    return out


def detect(
    observations: pd.DataFrame,
    farms: pd.DataFrame,
    *,
    asof: str | pd.Timestamp,
    settings: DetectSettings = DEFAULT_SETTINGS,
    calendars: Mapping[str, Calendar] | None = None,
) -> pd.DataFrame:
    """Run every detector over observations up to ``asof`` (inclusive).

    Parameters
    ----------
    observations
        The observations table (see design.md); rows after ``asof`` are ignored.
    farms
        The loan book (``farm_id``, ``crop``, optional ``region``); farms not in it are ignored.
    asof
        The run's "today".
    settings
        Detector thresholds.
    calendars
        Crop calendars (default: :func:`agrisat.calendar.default_calendars`).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ANOMALY_COLUMNS`: one row per clear look in the lookback window (see
        :func:`assemble`) with its ``hazard`` (``"none"`` for looks that are not anomalous) and
        ``state``, plus one ``stale_data`` row per stale farm. Feed it to
        :func:`agrisat.alerts.update_alerts`.
    """
    day = pd.Timestamp(asof).normalize()
    obs = observations[pd.to_datetime(observations["date"]).dt.normalize() <= day]
    # Baselines are computed a little before the window so runs that straddle it keep onsets.
    eval_from = day - pd.Timedelta(days=s_lookback(settings))
    feats = look_features(obs, farms, settings=settings, calendars=calendars, eval_from=eval_from)
    if feats.empty:
        classified = feats
        for col in ANOMALY_COLUMNS:
            classified[col] = pd.Series(dtype=object)
        classified["date"] = pd.Series(dtype="datetime64[ns]")
    else:
        classified = classify_looks(feats, settings)
    out = assemble(classified, farms, obs, asof=day, settings=settings, calendars=calendars)
    n_anom = int((out["state"] == "anomalous").sum())
    log.info(
        "detect asof %s: %d clear looks, %d anomalous rows, %d farms",
        day.date(),
        len(feats),
        n_anom,
        out["farm_id"].nunique(),
    )
    return out


def s_lookback(settings: DetectSettings) -> int:
    """Days of baselines computed before ``asof`` (lookback plus a margin for open runs)."""
    return settings.lookback_days + 90
