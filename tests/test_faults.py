"""Faults outside: servers that fail in the usual ways; runs finish, lose nothing, never hang.

Everything goes through the real path against :class:`tests.fault_server.FaultServer` on
127.0.0.1: ``search_items`` for catalog faults, ``agrisat.pipeline.run`` over an http static
catalog for COG faults. Asset URLs carry a fake signature (``sig=TOPSECRET``) that must never
reach a log line or an error message.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from agrisat.catalog import search_items
from agrisat.config import Settings
from agrisat.errors import CatalogError
from agrisat.net import (
    RetryPolicy,
    clear_gdal_http_cache,
    gdal_http_options,
    install_log_redaction,
    parse_retry_after,
)
from agrisat.observations import read_observations
from agrisat.pipeline import gdal_options, run
from agrisat.store import Store
from agrisat.testing import SyntheticArchive, two_farm_archive

from .fault_server import Fault, FaultServer

X0, Y0 = 600000.0, 4040000.0
DATES = ["2026-04-01", "2026-04-06", "2026-04-11"]
WORLD = (-180.0, -90.0, 180.0, 90.0)
SECRET = "TOPSECRET"
TOKEN = f"st=2026-04-01&se=2026-04-02&sig={SECRET}"


class Sleeps(list[float]):
    """A ``sleep`` that really sleeps and remembers how long."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        time.sleep(seconds)


def fast_policy(**changes: object) -> RetryPolicy:
    # rand 0.5 puts the jitter in the middle: each backoff is exactly base_delay * 2**(n-1)
    base = RetryPolicy(
        max_attempts=3,
        base_delay=0.2,
        max_delay=1.0,
        retry_after_max=5.0,
        connect_timeout=1.0,
        read_timeout=1.0,
        deadline=10.0,
        sleep=Sleeps(),
        rand=lambda: 0.5,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# short fuses: the run's retry policy is one of its settings
SETTINGS = dataclasses.replace(Settings(), net=fast_policy()).replace("run", indices=("ndvi",))


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> SyntheticArchive:
    return two_farm_archive(tmp_path_factory.mktemp("archive"), dates=DATES)


@pytest.fixture(scope="module")
def clean(archive: SyntheticArchive, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """Observations of a run without any fault (read from disk, no server involved)."""
    workdir = tmp_path_factory.mktemp("clean")
    result = run(archive.book, str(archive.catalog), workdir, settings=SETTINGS)
    assert result.exit_code == 0 and result.items_ingested == len(DATES)
    return read_observations(workdir)


@pytest.fixture
def server(archive: SyntheticArchive, caplog: pytest.LogCaptureFixture) -> Iterator[FaultServer]:
    # what the lead wires into run(): redaction of third-party loggers, a fresh /vsicurl/ cache
    install_log_redaction()
    assert clear_gdal_http_cache()
    caplog.set_level(logging.DEBUG)
    with FaultServer(archive.root, asset_query=TOKEN) as srv:
        yield srv
    assert SECRET not in caplog.text


def asset(archive: SyntheticArchive, date: str, band: str) -> Path:
    item_id = next(i for i in archive.item_ids if date.replace("-", "") in i)
    return archive.catalog.parent / "sentinel-2-l2a" / item_id / f"{band}.tif"


def item_of(date: str) -> str:
    return f"S2B_50SQF_{date.replace('-', '')}_0_L2A"


def outcomes(srv: FaultServer, path: str | Path) -> list[str]:
    return [h.outcome for h in srv.hits_for(path)]


# --- catalog: STAC API ----------------------------------------------------------------------------


def test_api_503_then_200_is_retried_once(server: FaultServer, caplog) -> None:  # type: ignore[no-untyped-def]
    policy = fast_policy()
    server.schedule("api/search", Fault.status(503))
    items = search_items(server.base + "/api/", bbox=WORLD, policy=policy)
    assert sorted(i.id for i in items) == [item_of(d) for d in DATES]
    assert outcomes(server, "api/search") == ["503", "200"]
    assert policy.sleep == [pytest.approx(0.2)]
    warning = [
        r for r in caplog.records if r.levelno == logging.WARNING and "HTTP 503" in r.message
    ]
    assert len(warning) == 1 and "attempt 1 of 3" in warning[0].message
    assert f"{server.base}/api/search" in warning[0].message


def test_api_429_retry_after_is_honoured(server: FaultServer) -> None:
    policy = fast_policy()
    server.schedule("api/search", Fault.status(429, retry_after="1"))
    search_items(server.base + "/api/", bbox=WORLD, policy=policy)
    hits = server.hits_for("api/search")
    assert [h.outcome for h in hits] == ["429", "200"]
    assert policy.sleep == [1.0]  # the server's ask, not the 0.2 s backoff
    assert 1.0 <= hits[1].at - hits[0].at < 1.5


def test_api_retry_after_beyond_the_cap_gives_up_at_once(server: FaultServer) -> None:
    policy = fast_policy()
    server.always("api/search", Fault.status(429, retry_after="3600"))
    started = time.monotonic()
    with pytest.raises(CatalogError, match="429"):
        search_items(server.base + "/api/", bbox=WORLD, policy=policy)
    assert outcomes(server, "api/search") == ["429"] and policy.sleep == []
    assert time.monotonic() - started < 1.0


def test_retry_after_http_date_and_seconds() -> None:
    now = dt.datetime(2026, 4, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("Wed, 01 Apr 2026 12:00:07 GMT", now=now) == 7.0
    assert parse_retry_after("Wed, 01 Apr 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after(" 3 ", now=now) == 3.0
    assert parse_retry_after("soon", now=now) is None


def test_api_stalled_connection_times_out_and_is_retried(server: FaultServer) -> None:
    policy = fast_policy()
    server.schedule("api/search", Fault.stall(4.0))
    started = time.monotonic()
    items = search_items(server.base + "/api/", bbox=WORLD, policy=policy)
    elapsed = time.monotonic() - started
    assert len(items) == len(DATES)
    assert outcomes(server, "api/search") == ["stall", "200"]
    assert 1.0 <= elapsed < 2.5  # one read timeout (1 s) + one backoff (0.2 s), not the 4 s stall


def test_api_that_keeps_failing_gives_up_in_bounded_time(server: FaultServer) -> None:
    policy = fast_policy()
    server.always("api/search", Fault.status(503))
    started = time.monotonic()
    with pytest.raises(CatalogError, match="503"):
        search_items(server.base + "/api/", bbox=WORLD, policy=policy)
    assert outcomes(server, "api/search") == ["503"] * 3
    assert policy.sleep == [pytest.approx(0.2), pytest.approx(0.4)]
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_api_permanent_errors_are_not_retried(server: FaultServer, status: int) -> None:
    policy = fast_policy()
    server.always("api/search", Fault.status(status))
    with pytest.raises(CatalogError, match=str(status)):
        search_items(server.base + "/api/", bbox=WORLD, policy=policy)
    assert outcomes(server, "api/search") == [str(status)]
    assert policy.sleep == []


def test_api_malformed_json_is_a_clear_catalog_error(server: FaultServer) -> None:
    server.schedule("api/search", Fault.malformed())
    with pytest.raises(CatalogError, match="valid JSON") as info:
        search_items(server.base + "/api/?token=" + SECRET, bbox=WORLD, policy=fast_policy())
    assert f"{server.base}/api/search" in str(info.value)
    assert SECRET not in str(info.value)
    server.schedule("api/", Fault.malformed())  # the landing page too
    with pytest.raises(CatalogError, match=rf"{server.base}/api/ did not answer with valid JSON"):
        search_items(server.base + "/api/?token=" + SECRET, bbox=WORLD, policy=fast_policy())


def test_api_errors_and_retry_logs_never_show_the_token(server: FaultServer, caplog) -> None:  # type: ignore[no-untyped-def]
    server.always("api/search", Fault.status(503))
    with pytest.raises(CatalogError) as info:
        search_items(server.base + f"/api/?{TOKEN}", bbox=WORLD, policy=fast_policy())
    assert SECRET not in str(info.value)
    assert "retrying in" in caplog.text and SECRET not in caplog.text


# --- catalog: static catalog over http ------------------------------------------------------------


def test_static_catalog_item_503_is_retried_and_malformed_item_named(
    server: FaultServer, archive: SyntheticArchive
) -> None:
    item_json = asset(archive, DATES[1], "red").with_name(f"{item_of(DATES[1])}.json")
    server.schedule(item_json, Fault.status(503), None, Fault.malformed())
    url = server.url(archive.catalog)
    items = search_items(url, bbox=WORLD, policy=fast_policy())
    assert sorted(i.id for i in items) == [item_of(d) for d in DATES]
    assert outcomes(server, item_json) == ["503", "200"]
    with pytest.raises(CatalogError, match=rf"{server.url(item_json)} did not answer with valid"):
        search_items(url, bbox=WORLD, policy=fast_policy())


# --- COG reads through the pipeline ---------------------------------------------------------------


def _run(archive: SyntheticArchive, server: FaultServer, workdir: Path):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    result = run(archive.book, server.url(archive.catalog), workdir, settings=SETTINGS)
    return result, time.monotonic() - started


def test_gdal_options_follow_the_policy() -> None:
    opts = gdal_options(SETTINGS)
    assert opts["GDAL_HTTP_MAX_RETRY"] == 2 and opts["GDAL_HTTP_RETRY_DELAY"] == 0.2
    assert opts["GDAL_HTTP_TIMEOUT"] == 1 and opts["GDAL_HTTP_CONNECTTIMEOUT"] == 1
    assert opts["GDAL_HTTP_RETRY_CODES"] == "408,425,429,502,503,504"
    assert gdal_http_options(RetryPolicy(max_attempts=1))["GDAL_HTTP_MAX_RETRY"] == 0
    default = gdal_options(Settings())  # without a net section: the default policy
    assert default["GDAL_HTTP_MAX_RETRY"] == 4 and default["GDAL_HTTP_TIMEOUT"] == 60


def test_gdal_block_cache_is_the_configured_megabytes_inside_reads() -> None:
    # rasterio.Env sets GDAL_CACHEMAX through GDALSetCacheMax64, i.e. in bytes: the setting's
    # megabytes must arrive as bytes (a bare 256 once made a 256-byte cache)
    import rasterio
    from rasterio.env import get_gdal_config

    s = Settings().replace("cube", gdal_cache_mb=48)
    with rasterio.Env(**gdal_options(s)):
        assert get_gdal_config("GDAL_CACHEMAX") == 48 * 1024 * 1024


@pytest.mark.parametrize(
    ("fault", "first"),
    [(Fault.status(503), "503"), (Fault.status(429, retry_after="1"), "429")],
    ids=["503", "429"],
)
def test_cog_transient_status_is_retried_by_gdal(  # type: ignore[no-untyped-def]
    archive, server, clean, tmp_path, fault, first
) -> None:
    red = asset(archive, DATES[1], "red")
    server.schedule(red, fault)
    result, _ = _run(archive, server, tmp_path / "w")
    hits = server.hits_for(red)
    assert result.exit_code == 0 and result.items_failed == []
    assert [h.outcome for h in hits].count(first) == 1 and hits[0].outcome == first
    # GDAL retries after GDAL_HTTP_RETRY_DELAY (0.2 s) and does not read Retry-After (3.10);
    # other threads opening the same file may get in earlier, so look for the retry itself
    later = [h.at - hits[0].at for h in hits[1:]]
    assert any(0.15 <= s < 1.0 for s in later), later
    pd.testing.assert_frame_equal(read_observations(tmp_path / "w"), clean)


def test_cog_stalled_connection_is_cut_and_retried(archive, server, clean, tmp_path) -> None:  # type: ignore[no-untyped-def]
    red = asset(archive, DATES[1], "red")
    server.schedule(red, None, Fault.stall(6.0))  # the HEAD answers, the range GET never does
    result, elapsed = _run(archive, server, tmp_path / "w")
    assert result.exit_code == 0
    assert [h.outcome for h in server.hits_for(red)][:3] == ["200", "stall", "206"]
    assert elapsed < 5.0  # GDAL_HTTP_TIMEOUT 1 s + 0.2 s, not the 6 s stall
    pd.testing.assert_frame_equal(read_observations(tmp_path / "w"), clean)


def test_cog_404_fails_that_scene_only_and_the_rerun_fills_it(  # type: ignore[no-untyped-def]
    archive, server, clean, tmp_path, caplog
) -> None:
    nir = asset(archive, DATES[1], "nir")
    server.always(nir, Fault.status(404))
    workdir = tmp_path / "w"
    result, elapsed = _run(archive, server, workdir)
    assert result.exit_code == 3
    assert result.items_failed == [item_of(DATES[1])]
    assert result.items_ingested == 2 and elapsed < 10
    assert set(outcomes(server, nir)) == {"404"}  # 404 is final: never retried
    obs = read_observations(workdir)
    assert DATES[1] not in set(obs.date)  # unobserved: no rows at all, not zeros
    expected = clean[clean.date != DATES[1]].reset_index(drop=True)
    pd.testing.assert_frame_equal(obs.reset_index(drop=True), expected)
    ledger = Store(workdir).read("ledger").set_index("item_id")
    assert ledger.loc[item_of(DATES[1]), "status"] == "failed"  # not ingested: retried next run
    assert item_of(DATES[1]) in caplog.text and SECRET not in caplog.text

    server.clear()  # the asset is back; a new night (a fresh process) forgets GDAL's cache
    clear_gdal_http_cache()
    again, _ = _run(archive, server, workdir)
    assert again.exit_code == 0
    assert again.items_new == 1 and again.items_ingested == 1
    pd.testing.assert_frame_equal(read_observations(workdir), clean)


def test_cog_body_cut_at_60_percent_is_not_read_as_zeros(  # type: ignore[no-untyped-def]
    archive, server, clean, tmp_path
) -> None:
    red = asset(archive, DATES[1], "red")
    server.always(red, Fault.cut(0.6))
    workdir = tmp_path / "w"
    result, _ = _run(archive, server, workdir)
    assert result.exit_code == 3 and result.items_failed == [item_of(DATES[1])]
    obs = read_observations(workdir)
    assert DATES[1] not in set(obs.date)
    server.clear()
    clear_gdal_http_cache()
    again, _ = _run(archive, server, workdir)
    assert again.exit_code == 0 and again.items_ingested == 1
    pd.testing.assert_frame_equal(read_observations(workdir), clean)


@pytest.mark.parametrize("fault", [Fault.short_file(0.6), Fault.cut(0.6)], ids=["short", "cut"])
def test_cog_missing_tiles_raise_instead_of_zeros(tmp_path: Path, fault: Fault) -> None:
    """Header intact, tile bytes missing (object truncated, or transfer dropped): GDAL errors."""
    import numpy as np
    import rasterio
    from affine import Affine
    from rasterio.errors import RasterioIOError

    from agrisat.testing import write_cog

    noise = np.random.default_rng(0).integers(1, 60000, size=(512, 512), dtype=np.uint16)
    cog = write_cog(tmp_path / "b.tif", noise, transform=Affine(10, 0, X0, 0, -10, Y0), crs=32650)
    assert clear_gdal_http_cache()
    with FaultServer(tmp_path) as srv, rasterio.Env(**gdal_options(SETTINGS)):
        srv.schedule(cog, None, None, fault)  # HEAD and the header read are served whole
        if fault.kind == "short_file":
            srv.always(cog, fault)
        with rasterio.open(srv.url(cog)) as ds:
            assert ds.crs is not None
            with pytest.raises(RasterioIOError):
                ds.read(1)
        srv.clear()
        clear_gdal_http_cache()
        with rasterio.open(srv.url(cog)) as ds:
            assert (ds.read(1) == noise).all()  # once the fault clears, every pixel is back
