"""agrisat's detector and alert lifecycle on real series (``../shared/data/evaluation``).

Turns each real set into an observations table and a loan book (see
:mod:`benchmarks.real_series`, :mod:`benchmarks.real_worldcereal`), replays the nightly job
over the whole series and prints:

1. alerts per 100 farm-seasons by hazard, with and without ``stale_data``;
2. every alert raised, with the features of the looks that opened it (so each can be judged);
3. the documented events (bfast clear-fell, Somalia 2010-11 drought, sits' Rondonia
   deforestations): raised or not, hazard, delay from the documented start to the first
   nightly run that raised it (none where only the window is known: the first alert's onset
   and night instead), and alerts in the years before the event;
4. for labelled sets (sits), the alerts by label and hazard.

A PNG per alerted farm goes to ``benchmarks/out/eval_real/`` (git-ignored).

Run from the repository root::

    .venv/bin/python benchmarks/eval_real.py            # acquisition nights (+ weekly), ~4 min
    .venv/bin/python benchmarks/eval_real.py --daily    # agrisat.scoring.nightly_replay, ~6 min
    .venv/bin/python benchmarks/eval_real.py --sets bfast-harvest,bfast-somalia --no-plots
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

# the repository root, so `benchmarks.*` imports (appended: PYTHONPATH can pin another agrisat)
sys.path.append(str(Path(__file__).resolve().parents[1]))

from benchmarks.real_replay import classified_looks, raised, rate_table, replay
from benchmarks.real_series import (
    RealSet,
    bfast_harvest,
    bfast_somalia,
    eolearn_patch,
    landsat_lsts,
)
from benchmarks.real_sits import (
    sits_cerrado_seasons,
    sits_modis_seasons,
    sits_mt_point,
    sits_rondonia,
)
from benchmarks.real_worldcereal import worldcereal_extractions

OUT = Path(__file__).resolve().parent / "out" / "eval_real"
LOADERS = {
    "eolearn-testeopatch": eolearn_patch,
    "landsat-lsts": landsat_lsts,
    "bfast-harvest": bfast_harvest,
    "bfast-somalia": bfast_somalia,
    "worldcereal": worldcereal_extractions,
    "sits-rondonia": sits_rondonia,
    "sits-rondonia-filled": lambda: sits_rondonia(fills="keep"),
    "sits-modis": sits_modis_seasons,
    "sits-modis-1deg": lambda: sits_modis_seasons(cell_deg=1.0),
    "sits-cerrado": sits_cerrado_seasons,
    "sits-mt-point": sits_mt_point,
}
#: variants of a set for comparison, run only when named in ``--sets``
VARIANTS = ("sits-rondonia-filled", "sits-modis-1deg")
HAZARDS = ("drought", "abrupt_loss", "flood", "no_planting", "stale_data")
FEATURES = [
    "value", "prev_value", "expected", "own_deficit", "own_z", "peer_median", "peer_z",
    "peer_n", "peer_level", "clear_fraction", "water_fraction", "hazard", "state", "confirmed",
]  # fmt: skip


def plot_farm(rs: RealSet, looks: pd.DataFrame, alerts: pd.DataFrame, farm: str) -> Path:
    """NDVI of one farm (clear looks, cloudy dates, peers' median, own expected) with its
    alerts: onset (dashed), first nightly run that raised it (solid), open span shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    obs = rs.observations[rs.observations["farm_id"] == farm].copy()
    obs["date"] = pd.to_datetime(obs["date"])
    lk = looks[looks["farm_id"] == farm]
    fig, ax = plt.subplots(figsize=(12, 4))
    ax.plot(lk["date"], lk["value"], "o-", ms=3, lw=0.8, color="#2e7d32", label="NDVI (clear)")
    anom = lk[lk["state"] == "anomalous"]
    ax.plot(anom["date"], anom["value"], "o", ms=6, mfc="none", color="#c62828", label="anomalous")
    if lk["peer_median"].notna().any():
        ax.plot(lk["date"], lk["peer_median"], "-", lw=0.8, color="#1565c0", label="peers' median")
    if lk["expected"].notna().any():
        ax.plot(lk["date"], lk["expected"], "--", lw=0.8, color="#6d4c41", label="own expected")
    gaps = obs[obs["status"] != "ok"]
    ax.plot(
        gaps["date"], np.full(len(gaps), -0.05), "x", ms=4, color="#90a4ae", label="cloudy/no data"
    )
    colours = {"drought": "#ef6c00", "abrupt_loss": "#c62828", "flood": "#0277bd",
               "no_planting": "#6a1b9a", "stale_data": "#9e9e9e"}  # fmt: skip
    for a in alerts[alerts["farm_id"] == farm].itertuples():
        c = colours.get(a.hazard, "k")
        end = a.resolved_date if pd.notna(a.resolved_date) else a.last_run
        ax.axvspan(a.onset_date, end, color=c, alpha=0.12)
        ax.axvline(a.onset_date, color=c, ls="--", lw=0.8)
        ax.axvline(a.first_run, color=c, lw=1.2)
        ax.text(a.first_run, 0.97, f" {a.hazard}", color=c, fontsize=8, va="top")
    for ev in rs.events.itertuples() if len(rs.events) else []:
        if ev.farm_id == farm:
            ax.axvspan(pd.Timestamp(ev.start), pd.Timestamp(ev.end), color="k", alpha=0.06)
            ax.text(pd.Timestamp(ev.start), 0.03, f" documented {ev.hazard}", fontsize=8)
    ax.set_ylim(-0.1, 1.0)
    ax.set_title(
        f"{rs.name} {farm} ({rs.farms.set_index('farm_id').loc[farm, 'region'] or 'no region'})"
    )
    ax.legend(fontsize=7, ncol=6, loc="lower left")
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{rs.name}_{farm}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def describe_alert(a: pd.Series, looks: pd.DataFrame) -> str:
    """The onset look and the look that confirmed it, with their features."""
    lk = looks[looks["farm_id"] == a["farm_id"]].set_index("date")
    rows = lk.loc[(lk.index >= a["onset_date"]) & (lk.index <= a["first_run"]), FEATURES]
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        return rows.to_string()


def event_report(rs: RealSet, alerts: pd.DataFrame, looks: pd.DataFrame) -> list[dict]:
    out = []
    crop = alerts[alerts["hazard"] != "stale_data"]
    for ev in rs.events.to_dict("records"):
        start, end = pd.Timestamp(ev["start"]), pd.Timestamp(ev["end"])
        mine = crop[crop["farm_id"] == ev["farm_id"]]
        # the event's alert: onset in the event window (15 days' slack, as score_alerts)
        hit = mine[
            (mine["onset_date"] >= start - pd.Timedelta(days=15)) & (mine["onset_date"] <= end)
        ]
        before = mine[mine["onset_date"] < start - pd.Timedelta(days=15)]
        ev_looks = looks[(looks["farm_id"] == ev["farm_id"]) & (looks["date"] > start)]
        first = hit.sort_values("first_run").iloc[0] if len(hit) else None
        n_looks = int((ev_looks["date"] <= first["first_run"]).sum()) if first is not None else None
        # a window without a known start (a labelled loss "within the year"): no delay
        known = bool(ev.get("start_known", True))
        out.append(
            {
                "event": ev["event_id"],
                "raised": first is not None,
                "hazard": first["hazard"] if first is not None else "-",
                "hazard_ok": first is not None and first["hazard"] == ev["hazard"],
                "onset": f"{first['onset_date']:%Y-%m-%d}" if first is not None else "-",
                "first_run": f"{first['first_run']:%Y-%m-%d}" if first is not None else "-",
                "delay_days": (first["first_run"] - start).days
                if first is not None and known
                else None,
                "looks_after_start": n_looks,
                "alerts_before": len(before),
                "before": ", ".join(
                    f"{r.hazard}@{r.onset_date:%Y-%m}" for r in before.itertuples()
                ),
            }
        )
    return out


def run_set(
    rs: RealSet, *, daily: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """Alerts (one row per id), classified looks and rates of one set.

    A set whose farms are watched in separate windows (``rs.extra["parts"]``: sits' MODIS
    samples, one season each) is replayed part by part -- a farm outside its window is not in
    the book, rather than stale -- and its rates are the parts' counts over the parts'
    farm-seasons.
    """
    parts: list[RealSet] = list(rs.extra.get("parts") or [rs])  # type: ignore[call-overload]
    alerts: list[pd.DataFrame] = []
    looks: list[pd.DataFrame] = []
    fs = 0.0
    counts: dict[str, float] = {}
    for part in parts:
        a = raised(replay(part, daily=daily))
        alerts.append(a)
        looks.append(classified_looks(part))
        r = rate_table(part, a)
        fs += r["farm_seasons"]
        for k, v in r.items():
            if k != "farm_seasons":
                counts[k] = counts.get(k, 0.0) + v * r["farm_seasons"] / 100.0
    rates = {k: 100.0 * v / fs for k, v in counts.items()}
    rates["farm_seasons"] = fs
    kept = [x for x in alerts if len(x)] or alerts[:1]
    lk = [x for x in looks if len(x)] or looks[:1]
    return pd.concat(kept, ignore_index=True), pd.concat(lk, ignore_index=True), rates


def label_table(rs: RealSet, alerts: pd.DataFrame) -> str:
    """Farms, alerted farms and alerts by hazard per label (stale data apart)."""
    label = pd.Series(rs.extra["label"], name="label")  # type: ignore[arg-type]
    out = label.value_counts().rename("farms").to_frame()
    if len(alerts):
        a = alerts.assign(label=alerts["farm_id"].map(label))
        crop = a[a["hazard"] != "stale_data"]
        out["farms_alerted"] = crop.groupby("label")["farm_id"].nunique()
        out = out.join(pd.crosstab(a["label"], a["hazard"]))
    return "alerts by label:\n" + out.fillna(0).astype(int).to_string()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sets",
        default=",".join(k for k in LOADERS if k not in VARIANTS),
        help=f"comma-separated set names (of {', '.join(LOADERS)})",
    )
    ap.add_argument("--daily", action="store_true", help="use nightly_replay, one run per night")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)
    table = []
    events: list[dict] = []
    for name in args.sets.split(","):
        rs = LOADERS[name]()
        t0 = time.perf_counter()
        alerts, looks, rates = run_set(rs, daily=args.daily)
        secs = time.perf_counter() - t0
        table.append({"set": name, **rates, "n_alerts": len(alerts), "seconds": secs})
        print(f"\n=== {name}: {rs.note}")
        crop = alerts[alerts["hazard"] != "stale_data"]
        stale = alerts[alerts["hazard"] == "stale_data"]
        if len(stale):
            by = stale["peer_state"].fillna("?").value_counts().to_dict()
            print(f"stale_data alerts: {len(stale)} ({by}); onsets by month: "
                  f"{stale['onset_date'].dt.month.value_counts().sort_index().to_dict()}")  # fmt: skip
        for _, a in crop.iterrows():
            print(
                f"\n-- {a['alert_id']} {a['farm_id']} {a['hazard']} onset {a['onset_date']:%Y-%m-%d}"
                f" raised {a['first_run']:%Y-%m-%d} last status {a['last_status']}"
                f" (resolved {a['resolved_date'] if pd.notna(a['resolved_date']) else '-'})"
            )
            print(f"   first evidence: {a['first_evidence']}")
            print(describe_alert(a, looks))
        if "label" in rs.extra:
            print(label_table(rs, alerts))
        if not args.no_plots:
            for farm in crop["farm_id"].unique():
                plot_farm(rs, looks, alerts, farm)
            for farm in rs.events["farm_id"].unique() if len(rs.events) else []:
                plot_farm(rs, looks, alerts, farm)
        if len(rs.events):
            events += [{"set": name, **e} for e in event_report(rs, alerts, looks)]
    print("\n=== alerts per 100 farm-seasons (onset in the series; farm-seasons = farms x years)")
    df = pd.DataFrame(table).set_index("set")
    cols = ["farm_seasons", *HAZARDS, "crop", "all", "n_alerts", "seconds"]
    with pd.option_context("display.width", 200, "display.float_format", "{:.2f}".format):
        print(df[cols].rename(columns={"crop": "all_but_stale", "all": "with_stale"}).to_string())
        if events:
            print(
                "\n=== documented events (delay = first nightly run raising it - documented start)"
            )
            ev = pd.DataFrame(events)
            print(
                ev.drop(columns=["before"]).to_string(index=False)
                if len(ev) > 20
                else ev.to_string(index=False)
            )
            by = ev.groupby("set").agg(
                events=("event", "size"), raised=("raised", "mean"), hazard_ok=("hazard_ok", "mean")
            )
            print("\nrecall (raised) and hazard-correct recall per set:")
            print(by.to_string())
    if not args.no_plots:
        print(f"\nplots: {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
