"""Column-wise alert records for the bulk case: farms whose only rows are ``stale_data`` rows.

Split from :mod:`agrisat.alerts`. A province under a month of cloud (or a run dated long after
its scenes) gives tens of thousands of farms a stale row and nothing else; their episodes need
none of the per-farm walk (no crop episode to open, extend or carry), so ids, severity, evidence
and the record fields are built for all of them at once. The result must equal, field for
field, what :func:`agrisat.alerts._record` builds for the same episodes (tests compare both);
the evidence sentence of the per-farm walk lives here too, beside its column-wise twin.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

from .arrowops import isin
from .i18n import STALE_REASON, peer_sentence
from .severity import SEVERITIES, SeverityRule

__all__ = [
    "PEER_EVIDENCE",
    "USUAL_GAP_SHOWN",
    "evidence",
    "peer_fields",
    "split_stale",
    "stale_records",
]

#: a drought's evidence names the farm's usual gap to its peers from this size on: smaller
#: gaps would clutter the sentence without changing how an analyst reads the peers' level
USUAL_GAP_SHOWN = 0.02

#: hazards whose evidence names the same-date peers (``peer_median``, ``peer_n``); a
#: drought also names the farm's usual standing among them (``usual_gap``)
PEER_EVIDENCE: tuple[str, ...] = ("drought", "abrupt_loss")
#: a drought's peer verdicts the English evidence names by their code
_PEER_CODES: tuple[str, ...] = ("idiosyncratic", "systemic")


def _d(ts: Any) -> str:
    return "?" if pd.isna(ts) else f"{pd.Timestamp(ts):%Y-%m-%d}"


def evidence(ep: dict[str, Any]) -> str:
    """The evidence sentence of one episode (the per-farm walk's; :func:`stale_records` writes
    the same sentence for its stale episodes column-wise)."""
    r = ep["row"]
    idx = str(r.get("index") or "ndvi").upper()
    hz, n, onset = ep["hazard"], ep["n_looks"], _d(ep["onset"])
    looks = f"{n} clear look{'s' if n != 1 else ''}"
    # the sentence names exactly the peer values the alert's columns carry (peer_fields)
    pf = peer_fields(hz, r)
    peers = ""
    if pd.notna(pf["peer_median"]):
        peers = f"; peers at {pf['peer_median']:.2f} (n={int(pf['peer_n'])})"
    if hz == "drought":
        z = f", robust z {r['own_z']:.1f}" if pd.notna(r.get("own_z")) else ""
        # peers are judged against the farm's usual standing among them at this time of year
        # (anomaly.seasonal): say it when it matters, or "peers at 0.73" misleads
        if pd.notna(pf["usual_gap"]):
            side = "above" if pf["usual_gap"] > 0 else "below"
            peers += f", the farm usually {abs(pf['usual_gap']):.2f} {side} them"
        # the peers' verdict; without one, words as the re-rendered sentence has them (a
        # bare "; unknown." read as if the drought itself were unknown)
        state = r.get("peer_state")
        verdict = state if state in _PEER_CODES else peer_sentence("unknown", "en")
        text = (
            f"{idx} {r['value']:.2f} on {_d(r['date'])} vs {r['expected']:.2f} expected "
            f"({-r['score']:+.0%}{z}); below normal since {onset} over {looks}{peers}; "
            f"{verdict}"
        )
    elif hz == "abrupt_loss":
        # ``row`` is the latest look *of this hazard*: after the drop the looks turn to
        # other hazards (drought), so it is the onset's look and its date is not the latest
        # look's. Only an episode that carries its latest look (``last``) may quote one.
        text = (
            f"{idx} fell {r['score']:.0%} from {r['expected']:.2f} to {r['value']:.2f} "
            f"on {_d(ep['onset'])} outside the harvest window{peers}; {looks} since"
        )
        last = ep.get("last")
        if isinstance(last, dict) and pd.notna(last.get("value")):
            text += f", latest {last['value']:.2f} on {_d(last.get('date'))}"
    elif hz == "flood":
        text = (
            f"standing water on {r['score']:.0%} of the clear area on {_d(r['date'])} "
            f"(usual {r['expected']:.0%}); {idx} {r['value']:.2f}; since {onset}, {looks}"
        )
    elif hz == "no_planting":
        text = (
            f"no green-up: {idx} {r['value']:.2f} on {_d(r['date'])} while peers/history "
            f"are at {r['expected']:.2f} ({r.get('stage') or 'season'}); since {onset}, {looks}"
        )
    else:
        stage = r.get("stage")
        text = f"no clear look since {onset} ({int(r['score'])} days)" + (
            f" during the {stage} stage" if isinstance(stage, str) else ""
        )
        text += STALE_REASON.get(str(r.get("peer_state")), "")
    if ep.get("resolved"):
        text += f"; resolved {_d(ep['resolved'])} after clear looks back in the normal range"
    return text[:1].upper() + text[1:] + "."


def peer_fields(hazard: str, r: dict[str, Any]) -> dict[str, float]:
    """``peer_median``, ``peer_n`` and ``usual_gap`` as the evidence sentence states them
    (NaN where it states none)."""
    nan = float("nan")
    med: Any = r.get("peer_median")
    if hazard not in PEER_EVIDENCE or med is None or pd.isna(med):
        return {"peer_median": nan, "peer_n": nan, "usual_gap": nan}
    gap: Any = r.get("usual_gap")
    shown = (
        hazard == "drought"
        and gap is not None
        and pd.notna(gap)
        and abs(float(gap)) >= USUAL_GAP_SHOWN
    )
    return {
        "peer_median": float(med),
        "peer_n": float(r.get("peer_n") or 0),
        "usual_gap": float(gap) if shown else nan,
    }


def split_stale(
    stale: pd.DataFrame, *, dates: pd.Series, blocked: Any
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``stale`` rows split into (column-wise, per-farm walk).

    A farm goes column-wise when it is not in ``blocked`` (farms with crop looks to walk or
    open alerts that need matching) and all its stale rows are ordinary: a day-stamped onset
    and a finite score. Anything else (which the per-farm walk handles or rejects with its own
    error) keeps the per-farm path, and so does everything when the date columns are not
    naive datetimes (the walk converts those value by value).
    """
    if stale.empty or not (_naive(stale["onset"]) and _naive(dates)):
        return stale.iloc[:0], stale
    score = pd.to_numeric(stale["score"], errors="coerce")
    odd = (
        stale["onset"].isna()
        | ~np.isfinite(score.to_numpy(dtype=float, na_value=np.nan))
        | stale["peer_median"].notna()
    )
    slow = isin(stale["farm_id"], list(blocked)) | isin(stale["farm_id"], stale.loc[odd, "farm_id"])
    return stale[~slow], stale[slow]


def stale_records(
    rows: pd.DataFrame,
    hist: pd.DataFrame,
    *,
    day: pd.Timestamp,
    last_seen: dict[Any, Any],
    rules: tuple[SeverityRule, ...],
) -> dict[str, list[Any]]:
    """Alert fields (lists, in the order of :func:`agrisat.alerts._record`'s keys) of the open
    ``stale_data`` episodes of ``rows`` (farms with stale rows only, from :func:`split_stale`).

    ``hist`` is the history indexed by ``alert_id``; ``last_seen`` the last clear look per farm.
    A farm's rows with the same onset make one alert: the last row wins, as in the per-farm walk.
    """
    rows = rows.sort_values("farm_id", kind="stable")
    farm = [str(f) for f in rows["farm_id"].tolist()]
    onset = rows["onset"]
    day_str = np.datetime_as_string(onset.to_numpy().astype("datetime64[D]"), unit="D").tolist()
    ids = [
        "A" + hashlib.sha1(f"{f}|stale_data|{d}".encode()).hexdigest()[:15]
        for f, d in zip(farm, day_str, strict=True)
    ]
    keep = ~pd.Series(ids).duplicated(keep="last").to_numpy()
    if not keep.all():
        rows, onset = rows[keep], onset[keep]
        farm, day_str, ids = (
            [v for v, k in zip(x, keep, strict=True) if k] for x in (farm, day_str, ids)
        )
    n = len(ids)
    score = rows["score"].astype(float).to_numpy()
    days = (day - onset).dt.days.to_numpy()
    level = np.zeros(n, dtype=int)
    for r in rules:
        if r.hazard == "stale_data":
            hit = (score >= r.min_magnitude) & (days >= r.min_days)
            level[hit] = np.maximum(level[hit], SEVERITIES.index(r.severity))
    pos = hist.index.get_indexer(ids)
    known = pos >= 0
    h_hazard = _take(hist["hazard"], pos)
    h_first = _take(hist["first_raised"], pos)
    h_last = _take(hist["last_observed"], pos)
    seen = [last_seen.get(f, pd.NaT) for f in rows["farm_id"].tolist()]
    first_raised = [f if k else day for f, k in zip(h_first, known, strict=True)]
    stage = rows["stage"].tolist()
    why = rows["peer_state"].tolist()
    evidence = [
        f"No clear look since {d} ({int(s)} days)"
        + (f" during the {st} stage" if isinstance(st, str) else "")
        + STALE_REASON.get(w if isinstance(w, str) else "", "")
        + "."
        for d, s, st, w in zip(day_str, score.tolist(), stage, why, strict=True)
    ]
    return {
        "alert_id": ids,
        "farm_id": farm,
        "hazard": [h if k else "stale_data" for h, k in zip(h_hazard, known, strict=True)],
        "severity": [SEVERITIES[i] for i in level.tolist()],
        "status": ["new" if f == day else "ongoing" for f in first_raised],
        "onset_date": onset.tolist(),
        "last_observed": [
            pd.Timestamp(s) if pd.notna(s) else (h if k else pd.NaT)
            for s, h, k in zip(seen, h_last, known, strict=True)
        ],
        "evidence": evidence,
        "peer_state": why,
        "score": score.tolist(),
        "value": rows["value"].tolist(),
        "expected": rows["expected"].tolist(),
        "index": rows["index"].tolist(),
        "n_looks": [0] * n,
        "first_raised": first_raised,
        "last_updated": [day] * n,
        "resolved_date": [pd.NaT] * n,
        "peer_median": [float("nan")] * n,  # a stale alert's evidence names no peer values
        "peer_n": [float("nan")] * n,
        "usual_gap": [float("nan")] * n,
    }


def _naive(col: pd.Series) -> bool:
    return isinstance(col.dtype, np.dtype) and col.dtype.kind == "M"


def _take(col: pd.Series, pos: np.ndarray) -> list[Any]:
    """``col`` at positions ``pos`` (None where -1), as the Python values ``to_dict`` gives."""
    hit = pos >= 0
    out: list[Any] = [None] * len(pos)
    for i, v in zip(np.flatnonzero(hit).tolist(), col.iloc[pos[hit]].tolist(), strict=True):
        out[i] = v
    return out
