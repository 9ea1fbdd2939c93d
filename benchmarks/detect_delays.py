"""Per-event delay breakdown: where the days between an event's start and its alert go.

For each known event of a scenario: the first clear look of the farm after the start, the
first look a detector flagged (any hazard), the first look that confirmed, the first nightly
run that raised a matching alert, the looks that took (``run_looks``), and the flagged
hazards. ``wait_clear`` is start -> first clear look (the sky), ``wait_flag`` first clear look
-> first flagged look (thresholds, the stage guard), ``wait_confirm`` flagged -> confirmed
(confirmation), ``wait_night`` confirmed -> raised (lifecycle; 0 when nightly).

    .venv/bin/python -W ignore benchmarks/detect_delays.py [--scenario demo] [--set k=v ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scenarios import build, parse_sets, scenario_specs, score


def breakdown(wd: Path, settings: object) -> pd.DataFrame:
    from scenarios import load

    from agrisat.anomaly import classify_looks, look_features

    _, ev, _ = score(wd, settings)
    obs, farms, _, _ = load(wd)
    feats = look_features(obs, farms, settings=settings)
    c = classify_looks(feats, settings)
    rows = []
    for e in ev.to_dict("records"):
        start = pd.Timestamp(e["start"])
        looks = c[(c["farm_id"].astype(str) == e["farm_id"]) & (c["date"] >= start)]
        first_clear = looks["date"].min()
        flagged = looks[looks["state"] == "anomalous"]
        conf = looks[looks["confirmed"]]
        raised = start + pd.Timedelta(days=e["delay_days"]) if e["detected"] else pd.NaT
        first_conf = conf["date"].min() if len(conf) else pd.NaT
        n_looks = int(conf["run_looks"].iloc[0]) if len(conf) else np.nan
        rows.append(
            {
                "event": e["event_id"],
                "farm": e["farm_id"],
                "hazard": e["hazard"],
                "start": start.date(),
                "clear": first_clear.date() if pd.notna(first_clear) else None,
                "flagged": flagged["date"].min().date() if len(flagged) else None,
                "confirmed": first_conf.date() if pd.notna(first_conf) else None,
                "raised": raised.date() if pd.notna(raised) else None,
                "delay": e["delay_days"],
                "looks": n_looks,
                "flag_hazards": ",".join(dict.fromkeys(flagged["hazard"].head(4))),
                "alert": ",".join(e["alert_hazards"]),
                "wait_clear": _days(start, first_clear),
                "wait_visible": e["wait_visible_days"],
                "wait_flag": _days(first_clear, flagged["date"].min() if len(flagged) else pd.NaT),
                "wait_confirm": _days(
                    flagged["date"].min() if len(flagged) else pd.NaT, first_conf
                ),
            }
        )
    return pd.DataFrame(rows)


def _days(a: object, b: object) -> float:
    return (
        float((pd.Timestamp(b) - pd.Timestamp(a)).days) if pd.notna(a) and pd.notna(b) else np.nan
    )


def main() -> None:
    from agrisat.anomaly import DetectSettings

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scenario", default="demo")
    ap.add_argument("--set", action="append", default=[])
    a = ap.parse_args()
    specs = scenario_specs()
    wd = build(a.scenario, specs[a.scenario])
    table = breakdown(wd, DetectSettings(**parse_sets(a.set)))
    pd.set_option("display.width", 250)
    print(table.to_string(index=False))
    d = table["delay"].dropna()
    print(
        f"\nmedian delay {d.median():.1f} d, p90 {np.percentile(d, 90):.1f} d; median waits: "
        f"clear {table['wait_clear'].median():.1f}, flag {table['wait_flag'].median():.1f}, "
        f"confirm {table['wait_confirm'].median():.1f}"
    )
    lower = (table["wait_clear"]).dropna()
    print(f"lower bound (first clear look): median {lower.median():.1f}, p90 "
          f"{np.percentile(lower, 90):.1f}")  # fmt: skip
    vis = table["wait_visible"].dropna()
    print(f"floor (first clear look where the event can show, agrisat.scoring): median "
          f"{vis.median():.1f}, p90 {np.percentile(vis, 90):.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
