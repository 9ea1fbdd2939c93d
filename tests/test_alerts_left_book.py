"""A farm that leaves the loan book: its open alerts close on the first run without it (same
id, its history and book keys kept, the evidence saying why), its looks raise nothing while it
is out, it gets a new alert if it comes back still anomalous, and the report does not fail on
an alert whose farm is gone."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from agrisat.alerts import update_alerts
from agrisat.i18n import left_book, render_evidence
from agrisat.report import build_report
from agrisat.rollup import rollup
from agrisat.store import Store
from agrisat.testing import SyntheticArchive

from .test_alerts import FARMS, RUN1, RUN2, _look
from .test_api import crafted_alerts, small_workdir

WITHOUT_F0 = FARMS[FARMS["farm_id"] != "F0000"].reset_index(drop=True)


def _stale(farm: str, date: str, onset: str) -> dict:
    return {
        **_look(farm, date, "stale"),
        "hazard": "stale_data",
        "state": "stale",
        "score": float((pd.Timestamp(date) - pd.Timestamp(onset)).days),
        "onset": pd.Timestamp(onset),
        "run_hazard": "stale_data",
        "confirmed": True,
    }


def _row(alerts: pd.DataFrame, aid: str) -> pd.Series:
    return alerts.set_index("alert_id").loc[aid]


def test_alert_of_a_farm_that_left_the_book_is_closed_keeping_id_and_keys() -> None:
    a1 = update_alerts(None, pd.DataFrame(RUN1), FARMS, run_date="2026-04-11")
    (aid,) = a1["alert_id"]
    assert a1.iloc[0]["loan_id"] == "L0000"
    # the next night's book lacks F0000; its looks are still in the lifecycle's window
    a2 = update_alerts(a1, pd.DataFrame(RUN2), WITHOUT_F0, run_date="2026-04-16")
    assert a2["alert_id"].tolist() == [aid]  # kept, not dropped, and no second alert
    r = _row(a2, aid)
    assert r["status"] == "resolved"
    assert r["resolved_date"] == pd.Timestamp("2026-04-16")
    assert r["last_updated"] == pd.Timestamp("2026-04-16")
    assert r["first_raised"] == pd.Timestamp("2026-04-11")
    assert r["onset_date"] == pd.Timestamp("2026-04-06")
    # the keys it had in the book, not blanks
    assert (r["loan_id"], r["borrower_id"], r["region"], r["crop"], r["exposure"]) == (
        "L0000", "B0000", "county-a", "wheat_maize", 1000.0,
    )  # fmt: skip
    assert r["evidence"].startswith(a1.iloc[0]["evidence"].rstrip("."))
    assert r["evidence"].endswith("; closed 2026-04-16: the farm left the loan book.")
    assert left_book(r.to_dict())
    # later nights without it: unchanged, and a rerun gives the same table
    a3 = update_alerts(a2, pd.DataFrame(RUN2), WITHOUT_F0, run_date="2026-04-21")
    pd.testing.assert_frame_equal(a3, a2)
    again = update_alerts(a1, pd.DataFrame(RUN2), WITHOUT_F0, run_date="2026-04-16")
    pd.testing.assert_frame_equal(again, a2)


def test_open_stale_alert_of_a_farm_that_left_is_closed_too() -> None:
    a1 = update_alerts(
        None, pd.DataFrame([_stale("F0000", "2026-05-10", "2026-03-31")]), FARMS,
        run_date="2026-05-10",
    )  # fmt: skip
    assert a1.iloc[0]["status"] == "new"
    # no anomaly rows for it any more (the stale rows come from the book's farms)
    a2 = update_alerts(a1, pd.DataFrame([_look("F0001", "2026-05-12", "normal")]), WITHOUT_F0,
                       run_date="2026-05-12")  # fmt: skip
    assert a2["status"].tolist() == ["resolved"] and left_book(a2.iloc[0].to_dict())
    assert a2.iloc[0]["loan_id"] == "L0000"


def test_looks_of_a_farm_out_of_the_book_raise_nothing() -> None:
    assert update_alerts(None, pd.DataFrame(RUN1), WITHOUT_F0, run_date="2026-04-11").empty
    stale = _stale("F0000", "2026-05-10", "2026-03-31")
    assert update_alerts(None, pd.DataFrame([stale]), WITHOUT_F0, run_date="2026-05-10").empty


def test_farm_back_in_the_book_and_still_anomalous_gets_a_new_alert() -> None:
    a1 = update_alerts(None, pd.DataFrame(RUN1), FARMS, run_date="2026-04-11")
    (old,) = a1["alert_id"]
    a2 = update_alerts(a1, pd.DataFrame(RUN2), WITHOUT_F0, run_date="2026-04-16")
    # back on 04-21 with the same event going on (same onset, so the same onset-derived id)
    back = [*RUN2, _look("F0000", "2026-04-21", "anomalous", onset="2026-04-06", run_looks=4,
                         confirmed=True)]  # fmt: skip
    a3 = update_alerts(a2, pd.DataFrame(back), FARMS, run_date="2026-04-21")
    assert len(a3) == 2
    closed = _row(a3, old)
    assert closed["status"] == "resolved" and left_book(closed.to_dict())
    assert closed["resolved_date"] == pd.Timestamp("2026-04-16")
    (new,) = set(a3["alert_id"]) - {old}
    r = _row(a3, new)
    assert (r["status"], r["farm_id"], r["hazard"]) == ("new", "F0000", "drought")
    assert r["first_raised"] == pd.Timestamp("2026-04-21") and pd.isna(r["resolved_date"])
    assert r["loan_id"] == "L0000"
    # the next night it is the same alert, ongoing; then it recovers under its own id
    more = [*back, _look("F0000", "2026-04-26", "anomalous", onset="2026-04-06", run_looks=5,
                         confirmed=True)]  # fmt: skip
    a4 = update_alerts(a3, pd.DataFrame(more), FARMS, run_date="2026-04-26")
    assert sorted(a4["alert_id"]) == sorted([old, new])
    assert _row(a4, new)["status"] == "ongoing"
    well = [*more, _look("F0000", "2026-05-01", "normal"), _look("F0000", "2026-05-06", "normal")]
    a5 = update_alerts(a4, pd.DataFrame(well), FARMS, run_date="2026-05-06")
    assert sorted(a5["alert_id"]) == sorted([old, new])
    assert _row(a5, new)["status"] == "resolved" and not left_book(_row(a5, new).to_dict())
    # resolved on its second clear look back in the normal range (recover_looks=2)
    assert _row(a5, new)["resolved_date"] == pd.Timestamp("2026-05-06")
    pd.testing.assert_series_equal(_row(a5, old), _row(a3, old))


def test_farm_back_after_its_event_ended_gets_no_alert() -> None:
    a1 = update_alerts(None, pd.DataFrame(RUN1), FARMS, run_date="2026-04-11")
    a2 = update_alerts(a1, pd.DataFrame(RUN2), WITHOUT_F0, run_date="2026-04-16")
    well = [*RUN2, _look("F0000", "2026-04-21", "normal"), _look("F0000", "2026-04-26", "normal")]
    a3 = update_alerts(a2, pd.DataFrame(well), FARMS, run_date="2026-04-26")
    pd.testing.assert_frame_equal(a3, a2)


def test_closed_alert_says_why_in_both_languages() -> None:
    a1 = update_alerts(None, pd.DataFrame(RUN1), FARMS, run_date="2026-04-11")
    row = update_alerts(a1, pd.DataFrame(RUN2), WITHOUT_F0, run_date="2026-04-16").iloc[0]
    en = render_evidence(row.to_dict(), "en")
    zh = render_evidence(row.to_dict(), "zh")
    assert en.endswith("closed 2026-04-16: the farm left the loan book.")
    assert "normal range" not in en  # it did not recover
    assert "2026-04-16" in zh and "移出贷款清单" in zh and "恢复正常" not in zh


def test_rollup_counts_only_the_books_farms() -> None:
    a1 = update_alerts(None, pd.DataFrame(RUN1), FARMS, run_date="2026-04-11")
    roll = rollup(a1, WITHOUT_F0).set_index(["level", "key"])
    assert roll["farms_alerted"].sum() == 0 and roll["exposure_at_risk"].sum() == 0.0
    assert ("loan", "L0000") in roll.index  # F0001's loan, with F0001 only
    assert roll.loc[("loan", "L0000"), "n_farms"] == 1


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[SyntheticArchive, Path]:
    return small_workdir(tmp_path_factory.mktemp("leftbook"))


def test_report_renders_an_alert_whose_farm_left_the_book(
    built: tuple[SyntheticArchive, Path], tmp_path: Path
) -> None:
    arc, src = built
    workdir = tmp_path / "w"
    shutil.copytree(src, workdir)
    table = crafted_alerts("2026-04-26")
    gone = table[table["alert_id"] == "A1"].assign(alert_id="A9", farm_id="F9", exposure=900.0)
    with Store(workdir).transaction() as txn:
        txn.replace("alerts", pd.concat([gone, table], ignore_index=True))
    out = build_report(workdir, tmp_path / "r.html", catalog=arc.catalog, top_n=10, chips=False)
    text = out.read_text(encoding="utf-8")
    # F9 (largest exposure: first) gets a small card; the farms of the book get charts
    assert 'class="card small critical" id="card-A9" data-farm="F9"' in text
    assert text.count("data:image/png;base64,") == 3
