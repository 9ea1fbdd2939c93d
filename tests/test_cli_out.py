"""Paths a user gives the command line that cannot be written (an adversarial pass): ``--out``
a folder, under a file or in ``/proc``; ``--out`` a FIFO (the export replaced it with an
ordinary file, as root even a device); empty ``--workdir``/``--book``/``--out`` (an unset shell
variable ran in the current folder). Each ends in one line and exit 2, leaving things as they
were. Also the GeoJSON export's ``name``, which was the temporary file's."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agrisat.cli import main
from agrisat.config import Settings
from agrisat.errors import ConfigError
from agrisat.pipeline import run
from agrisat.store import Store, atomic_write_text
from agrisat.testing import two_farm_archive

DATES = ["2026-04-01", "2026-04-06", "2026-04-11"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    archive = two_farm_archive(tmp_path_factory.mktemp("archive"), dates=DATES)
    work = tmp_path_factory.mktemp("clean") / "w"
    settings = Settings().replace("run", indices=("ndvi",), end=DATES[-1])
    assert run(archive.book, str(archive.catalog), work, settings=settings).exit_code == 0
    return work


def _agrisat(
    args: tuple[str | Path, ...],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, str, str]:
    """``agrisat ARGS`` through the console entry, in this process (a process each took
    seconds); (status, out, err). Error paths only: success ends the process."""
    monkeypatch.setattr(sys, "argv", ["agrisat", *map(str, args)])
    with pytest.raises(SystemExit) as ended:
        main()
    out, err = capsys.readouterr()
    return int(ended.value.code or 0), out, err


def _one_line_exit_2(result: tuple[int, str, str], *said: str) -> None:
    code, out, err = result
    assert code == 2, (out, err)
    assert "Traceback" not in err and "Traceback" not in out, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    for words in said:
        assert words in lines[0], err


def test_an_out_that_cannot_be_written_is_one_line_and_exit_2(
    workdir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a_file = tmp_path / "a.txt"
    a_file.write_text("keep", encoding="utf-8")
    fifo, fifo_csv = tmp_path / "f.html", tmp_path / "f.csv"
    os.mkfifo(fifo)
    os.mkfifo(fifo_csv)
    cases = [
        # (command, words the one line must hold); was IsADirectoryError, a traceback, exit 1
        (("report", "-w", workdir, "--out", tmp_path), (f"--out {tmp_path}", "folder")),
        (("alerts", "-w", workdir, "--out", a_file / "x.csv"), ("--out", "not a folder")),
        (("observations", "-w", workdir, "--out", tmp_path), ("--out", "folder")),
        # was exit 0 with the FIFO replaced by an ordinary file
        (("report", "-w", workdir, "--out", fifo), ("--out", "not a regular file")),
        (("alerts", "-w", workdir, "--out", fifo_csv), ("--out", "not a regular file")),
    ]
    for args, said in cases:
        _one_line_exit_2(_agrisat(args, monkeypatch, capsys), *said)
    # the FIFOs are still FIFOs, the file is untouched, nothing was left behind
    assert stat.S_ISFIFO(fifo.stat().st_mode) and stat.S_ISFIFO(fifo_csv.stat().st_mode)
    assert a_file.read_text(encoding="utf-8") == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "f.csv", "f.html"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_an_out_in_proc_names_the_out_path_not_a_temporary(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the error came from the temporary file beside the target: a traceback, exit 1
    result = _agrisat(("alerts", "-w", workdir, "--out", "/proc/x.csv"), monkeypatch, capsys)
    _one_line_exit_2(result, "/proc")
    assert ".tmp" not in result[2]


def test_empty_path_options_are_refused(
    workdir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    book, catalog = tmp_path / "b.csv", tmp_path / "c.json"
    monkeypatch.chdir(tmp_path)
    cases = [
        (("run", "--workdir", tmp_path / "w", "--book", "", "--catalog", catalog), "--book is"),
        (("alerts", "--workdir", workdir, "--out", ""), "--out is empty"),
        (("report", "--workdir", "", "--out", tmp_path / "r.html"), "--workdir is empty"),
        (("demo", "--workdir", ""), "--workdir is empty"),
    ]
    for args, said in cases:
        _one_line_exit_2(_agrisat(args, monkeypatch, capsys), said)
    # and as a process, the way a cron line with an unset variable runs it
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    line = ["run", "--workdir", "", "--book", str(book), "--catalog", str(catalog)]
    proc = subprocess.run(
        [sys.executable, "-m", "agrisat", *line],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    _one_line_exit_2((proc.returncode, proc.stdout, proc.stderr), "--workdir is empty")
    assert list(tmp_path.iterdir()) == []  # nothing made in the current folder


def test_atomic_writes_refuse_to_replace_a_special_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        atomic_write_text(fifo, "x")
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe.txt"]  # no temporary left
    # an ordinary file is still replaced
    plain = tmp_path / "plain.txt"
    plain.write_text("old", encoding="utf-8")
    atomic_write_text(plain, "new")
    assert plain.read_text(encoding="utf-8") == "new"


def test_the_geojson_name_is_the_files_not_the_temporary(workdir: Path, tmp_path: Path) -> None:
    from agrisat.export import export_alerts

    store = Store(workdir)
    target = tmp_path / "alerts.zh.geojson"
    export_alerts(store.read("alerts"), store.read("farms"), target, lang="zh")
    name = json.loads(target.read_text(encoding="utf-8"))["name"]
    assert name == "alerts.zh"  # was ".alerts.zh.geojson.on1pjkgl.tmp"
