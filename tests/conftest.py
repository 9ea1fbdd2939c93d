"""Shared test helpers: where ``../shared/data`` is, and how to behave when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """Path under ../shared/data; skips the test where it is absent, except under CI (fails)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        reason = (
            f"{path} is absent (a fresh clone without ../shared); this test reads real data there"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " — and under CI it must be present")
        pytest.skip(reason)
    return path


@pytest.fixture
def measured_farms(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Farms exactextract measured in this process, one entry per call (its feature count);
    worker processes of the weights pool are not counted."""
    import agrisat.zonal.weights as weights_mod

    calls: list[int] = []
    real = weights_mod._cells

    def spy(src, wkbs, crs_wkt):  # type: ignore[no-untyped-def]
        calls.append(len(wkbs))
        return real(src, wkbs, crs_wkt)

    monkeypatch.setattr(weights_mod, "_cells", spy)
    return calls
