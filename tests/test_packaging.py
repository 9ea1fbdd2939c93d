"""pyproject.toml and environment.yml must list the same dependencies with the same bounds."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# PyPI name → conda-forge name, where they differ
CONDA_NAMES = {"dask[distributed]": ["dask", "distributed"]}


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*(.*)$", req)
    assert m, req
    return m.group(1).lower(), m.group(2).replace(" ", "")


def _pyproject() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = data["project"]["dependencies"] + data["project"]["optional-dependencies"]["dev"]
    out: dict[str, str] = {}
    for r in reqs:
        name, bound = _split(r)
        for conda_name in CONDA_NAMES.get(name, [name]):
            out[conda_name] = bound
    return out


def _environment() -> dict[str, str]:
    out: dict[str, str] = {}
    in_deps = False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if line.startswith("dependencies:"):
            in_deps = True
            continue
        m = re.match(r"^  - ([^\s#]+)\s*$", line)
        if in_deps and m and m.group(1) not in ("pip", "pip:"):
            name, bound = _split(m.group(1))
            if name != "python":
                out[name] = bound
    return out


def test_environment_mirrors_pyproject() -> None:
    py, env = _pyproject(), _environment()
    assert py == env, {
        "only in pyproject": sorted(set(py) - set(env)),
        "only in environment.yml": sorted(set(env) - set(py)),
        "different bounds": sorted(k for k in set(py) & set(env) if py[k] != env[k]),
    }


def test_python_floor_matches() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["requires-python"] == ">=3.11"
    assert "  - python>=3.11" in (ROOT / "environment.yml").read_text().splitlines()
