"""The command line and the run boundary under a user's mistakes and a hostile machine.

Each case is one a user met (an adversarial pass): the process exit status of a run with a
failed scene, settings files with every documented section or a wrong value type, an ``--end``
in the future or before the workdir's last night, ``--indices`` without the index detection
reads, odd ``--scheduler``/``--workdir``/``--catalog`` values, a full or read-only disk, and
``agrisat demo`` pointed at a real workdir. Command-line cases run the console entry as a
process (``python -m agrisat``), several at once to keep the module quick.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from agrisat.config import Settings, load_settings
from agrisat.demo.showcase import check_demo_workdir
from agrisat.errors import CatalogError, ConfigError, StoreError
from agrisat.observations import read_observations
from agrisat.pipeline import check_run_settings, run
from agrisat.store import Store
from agrisat.testing import SyntheticArchive, two_farm_archive

DATES = ["2026-04-01", "2026-04-06", "2026-04-11"]
SETTINGS = Settings().replace("run", indices=("ndvi",), end=DATES[-1])


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> SyntheticArchive:
    return two_farm_archive(tmp_path_factory.mktemp("archive"), dates=DATES)


@pytest.fixture(scope="module")
def truncated(archive: SyntheticArchive, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the archive whose red COG of DATES[1] lost its second half."""
    import shutil

    root = tmp_path_factory.mktemp("trunc")
    shutil.copytree(archive.root / "catalog", root / "catalog")
    (red,) = (root / "catalog").rglob(f"*_{DATES[1].replace('-', '')}_*/red.tif")
    data = red.read_bytes()
    red.write_bytes(data[: len(data) // 2])
    return root / "catalog" / "catalog.json"


@pytest.fixture(scope="module")
def clean(archive: SyntheticArchive, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workdir after one undisturbed run up to DATES[-1]."""
    workdir = tmp_path_factory.mktemp("clean") / "w"
    assert run(archive.book, str(archive.catalog), workdir, settings=SETTINGS).exit_code == 0
    return workdir


def _agrisat(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agrisat", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


# --- finding 1: exit status of the process ---------------------------------------------------


def test_run_with_a_failed_scene_exits_3_as_a_process(
    archive: SyntheticArchive, truncated: Path, tmp_path: Path
) -> None:
    common = ("--book", archive.book, "--end", DATES[-1], "--indices", "ndvi")
    failed = _agrisat("run", "--catalog", truncated, "--workdir", tmp_path / "bad", *common)
    fine = _agrisat("run", "--catalog", archive.catalog, "--workdir", tmp_path / "ok", *common)
    code, out, err = _finish(failed)
    assert code == 3, err
    assert f"scene failed (retried next run): S2B_50SQF_{DATES[1].replace('-', '')}" in out
    assert "Traceback" not in err
    code, out, err = _finish(fine)
    assert code == 0, err


# --- finding 10 and 9: settings files ---------------------------------------------------------


def test_settings_file_takes_every_documented_section(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text(
        "[detect]\ndrought_z = 3\nmin_peers = 7\n"
        "[alerts]\nrecover_looks = 4\n"
        '[[alerts.severity_rules]]\nhazard = "drought"\nseverity = "critical"\n'
        "min_magnitude = 0.3\n"
        "[net]\nmax_attempts = 2\nretry_statuses = [503]\n"
        '[run]\nindices = ["ndvi", "ndmi"]\n',
        encoding="utf-8",
    )
    s = load_settings(toml)
    assert s.detect.drought_z == 3.0 and isinstance(s.detect.drought_z, float)
    assert s.detect.min_peers == 7 and s.alerts.recover_looks == 4
    assert len(s.alerts.severity_rules) == 1
    rule = s.alerts.severity_rules[0]
    assert (rule.hazard, rule.severity, rule.min_magnitude) == ("drought", "critical", 0.3)
    assert s.net.max_attempts == 2 and s.net.retry_statuses == (503,)
    assert s.run.indices == ("ndvi", "ndmi")
    assert s.cube == Settings().cube  # sections left out keep their defaults
    hash(s)  # lists became tuples: settings stay hashable


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("[detect]\nnot_a_key = 3\n", ["not_a_key", "[detect]"]),
        ("[nope]\nx = 1\n", ["nope", "section"]),
        ('[run]\nbatch_rows = "lots"\n', ["[run] batch_rows", "'lots'", "integer"]),
        ("[detect]\ndrought_z = true\n", ["[detect] drought_z", "number"]),
        ('[run]\nindices = "ndvi"\n', ["[run] indices", "list"]),
        ("[cube]\ndirect_read = 1\n", ["[cube] direct_read", "true or false"]),
        ("[alerts]\nrecover_looks = 2.5\n", ["[alerts] recover_looks", "integer"]),
        (
            '[[alerts.severity_rules]]\nhazard = "drought"\nseverity = "x"\nmin_magnitude = "a"\n',
            ["severity_rules", "min_magnitude", "number"],
        ),
        ("[net]\nsleep = 3\n", ["[net] sleep", "cannot be set"]),
        ("[net]\nmax_attempts = 0\n", ["[net]", "max_attempts"]),
        ("run = 3\n", ["[run]", "table"]),
    ],
)
def test_bad_settings_files_say_what_is_wrong(
    tmp_path: Path, text: str, needles: list[str]
) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(toml)
    assert str(toml) in str(err.value)
    for needle in needles:
        assert needle in str(err.value)


# --- finding 2: --end in the future, --end before the last night -----------------------------


def test_end_in_the_future_is_refused_before_anything_is_written(
    archive: SyntheticArchive, tmp_path: Path
) -> None:
    today = dt.date(2026, 6, 1)
    tomorrow = Settings().replace("run", end="2026-06-02")
    check_run_settings(tomorrow, today=today)  # one day of slack for time zones
    with pytest.raises(ConfigError, match="in the future"):
        check_run_settings(Settings().replace("run", end="2026-06-03"), today=today)
    later = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=3)).isoformat()
    workdir = tmp_path / "w"
    with pytest.raises(ConfigError, match=f"--end {later} is in the future"):
        run(
            archive.book, str(archive.catalog), workdir, settings=SETTINGS.replace("run", end=later)
        )
    assert not workdir.exists()


def test_end_before_the_last_night_names_it_and_changes_nothing(
    archive: SyntheticArchive, clean: Path, tmp_path: Path
) -> None:
    import shutil

    workdir = tmp_path / "w"
    shutil.copytree(clean, workdir)
    before = Store(workdir).manifest_path.read_bytes()
    rejects = (workdir / "rejects.csv").stat().st_mtime_ns
    earlier = SETTINGS.replace("run", end="2026-02-01")  # before the look-back window too
    with pytest.raises(ConfigError) as err:
        run(archive.book, str(archive.catalog), workdir, settings=earlier)
    assert f"already ran up to {DATES[-1]}" in str(err.value)
    assert "--start" not in str(err.value)
    assert Store(workdir).manifest_path.read_bytes() == before
    assert (workdir / "rejects.csv").stat().st_mtime_ns == rejects
    # the same night again and a later one still run
    assert run(archive.book, str(archive.catalog), workdir, settings=SETTINGS).items_new == 0
    later = SETTINGS.replace("run", end="2026-04-20")
    assert run(archive.book, str(archive.catalog), workdir, settings=later).exit_code == 0


# --- finding 4: --indices without the index detection reads ----------------------------------


def test_indices_without_ndvi_are_refused_before_anything_is_written(
    archive: SyntheticArchive, tmp_path: Path
) -> None:
    workdir = tmp_path / "w"
    ndmi = SETTINGS.replace("run", indices=("ndmi",))
    with pytest.raises(
        ConfigError, match=r"detection reads ndvi; include it, e\.g\. --indices ndvi"
    ):
        run(archive.book, str(archive.catalog), workdir, settings=ndmi)
    assert not workdir.exists()
    # without detection the subset is fine
    done = run(archive.book, str(archive.catalog), workdir, settings=ndmi, detect=False)
    assert done.exit_code == 0
    assert "ndmi_mean" in read_observations(workdir).columns


# --- finding 9: one-line errors ---------------------------------------------------------------


def test_bogus_scheduler_is_a_config_error_before_anything_is_written(
    archive: SyntheticArchive, tmp_path: Path
) -> None:
    workdir = tmp_path / "w"
    with pytest.raises(ConfigError, match="--scheduler 'bogus'"):
        run(
            archive.book,
            str(archive.catalog),
            workdir,
            settings=SETTINGS.replace("run", scheduler="bogus"),
        )
    assert not workdir.exists()


def test_workdir_that_is_a_file_is_a_store_error(archive: SyntheticArchive, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("mine", encoding="utf-8")
    with pytest.raises(StoreError, match="is a file"):
        run(archive.book, str(archive.catalog), afile, settings=SETTINGS)
    assert afile.read_text(encoding="utf-8") == "mine"


def test_read_only_workdir_is_a_store_error(
    archive: SyntheticArchive, clean: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import filelock

    class ReadOnlyLock(filelock.FileLock):
        def acquire(self, *args: object, **kwargs: object) -> filelock.AcquireReturnProxy:
            raise OSError(errno.EROFS, "Read-only file system", self.lock_file)

    monkeypatch.setattr(filelock, "FileLock", ReadOnlyLock)
    with pytest.raises(StoreError, match=r"not writable.*Read-only file system"):
        run(archive.book, str(archive.catalog), clean, settings=SETTINGS)


def test_catalog_that_is_json_but_not_stac_is_a_catalog_error(
    archive: SyntheticArchive, tmp_path: Path
) -> None:
    with pytest.raises(CatalogError, match="JSON but not a STAC"):
        run(archive.book, str(_geojson(tmp_path)), tmp_path / "w", settings=SETTINGS)


def test_full_disk_is_a_store_error_and_a_rerun_finishes_the_job(
    archive: SyntheticArchive, clean: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agrisat.store

    real = agrisat.store._write_parquet
    calls = {"n": 0}

    def fills_up(df: pd.DataFrame, target: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] >= 3:  # the farms went in; the disk fills up during ingestion
            raise OSError(errno.ENOSPC, "No space left on device")
        real(df, target, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(agrisat.store, "_write_parquet", fills_up)
    workdir = tmp_path / "w"
    with pytest.raises(StoreError) as err:
        run(archive.book, str(archive.catalog), workdir, settings=SETTINGS)
    assert str(workdir) in str(err.value) and "no space left" in str(err.value)
    assert calls["n"] >= 3
    monkeypatch.setattr(agrisat.store, "_write_parquet", real)
    again = run(archive.book, str(archive.catalog), workdir, settings=SETTINGS)
    assert again.exit_code == 0
    pd.testing.assert_frame_equal(read_observations(workdir), read_observations(clean))


# --- finding 11: the demo never overwrites a user's workdir ----------------------------------


def test_demo_refuses_a_workdir_it_did_not_make(clean: Path, tmp_path: Path) -> None:
    check_demo_workdir(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    check_demo_workdir(tmp_path / "empty")
    made = tmp_path / "made"
    (made / "archive").mkdir(parents=True)
    check_demo_workdir(made)  # a first demo interrupted while writing its archive
    (made / "archive" / "demo.json").write_text("{}", encoding="utf-8")
    (made / "store").mkdir()
    check_demo_workdir(made)
    with pytest.raises(ConfigError, match="agrisat store not made by the demo"):
        check_demo_workdir(clean)
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="is a file"):
        check_demo_workdir(tmp_path / "afile")


# --- the same mistakes through the console entry: one line, exit 2 ---------------------------


def test_cli_mistakes_are_one_line_and_exit_2(
    archive: SyntheticArchive, clean: Path, tmp_path: Path
) -> None:
    book, cat = ("--book", archive.book), ("--catalog", archive.catalog)
    afile = tmp_path / "afile"
    afile.write_text("mine", encoding="utf-8")
    toml = tmp_path / "bad.toml"
    toml.write_text('[run]\nbatch_rows = "lots"\n', encoding="utf-8")
    future = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=400)).isoformat()
    fresh = tmp_path / "fresh"
    manifest = Store(clean).manifest_path.read_bytes()
    cases: dict[str, tuple[list[str | Path], str]] = {
        "scheduler": (
            ["run", *book, *cat, "--workdir", fresh, "--scheduler", "bogus"],
            "--scheduler 'bogus'",
        ),
        "file": (["run", *book, *cat, "--workdir", afile, "--end", DATES[-1]], "is a file"),
        "toml": (
            ["run", *book, *cat, "--workdir", fresh, "--config", toml],
            "[run] batch_rows = 'lots': expected an integer",
        ),
        "future": (["run", *book, *cat, "--workdir", fresh, "--end", future], "in the future"),
        "demo": (["demo", "--workdir", clean], "not made by the demo"),
    }
    procs = {name: _agrisat(*args) for name, (args, _) in cases.items()}
    for name, proc in procs.items():
        code, _, err = _finish(proc)
        assert code == 2, (name, err)
        assert "Traceback" not in err, (name, err)
        assert cases[name][1] in err, (name, err)
        assert len(err.strip().splitlines()) == 1, (name, err)
    assert not fresh.exists()  # refused before the workdir was made
    assert afile.read_text(encoding="utf-8") == "mine"
    assert Store(clean).manifest_path.read_bytes() == manifest  # the demo left it alone


def _geojson(folder: Path) -> Path:
    """A loan book as GeoJSON: JSON, but no STAC (given as ``--catalog`` by mistake)."""
    feature = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [117.0, 36.5]},
        "properties": {"farm_id": "F1"},
    }
    path = folder / "farms.geojson"
    doc = {"type": "FeatureCollection", "features": [feature]}
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


# --- finding 14: a run that finds nothing says so ---------------------------------------------


def test_a_run_that_finds_no_scene_warns(
    archive: SyntheticArchive, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = SETTINGS.replace("run", collection="landsat-c2-l2")
    with caplog.at_level("WARNING", logger="agrisat.pipeline"):
        done = run(archive.book, str(archive.catalog), tmp_path / "w", settings=wrong)
    assert done.exit_code == 0 and done.items_found == 0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("no scene" in m and "landsat-c2-l2" in m for m in warned), warned


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("run",), "Missing option '--book'"),
        (("run", "--book", "b.csv", "--catalog", "c.json", "-w", "{w}", "--bogus"), "--bogus"),
        (("alerts", "--workdir", "{w}", "--format", "pdf"), "pdf"),
    ],
)
def test_usage_mistakes_exit_2_as_a_process(
    tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    # typer >= 0.20 carries its own click, whose usage errors escaped main() as a traceback
    # with exit status 0: a cron job with a typo in its command line reported success.
    code, out, err = _finish(_agrisat(*(a.format(w=tmp_path / "w") for a in args)))
    assert code == 2, (out, err)
    assert said in err
    assert "Traceback" not in err and "Traceback" not in out
    assert not (tmp_path / "w").exists()
