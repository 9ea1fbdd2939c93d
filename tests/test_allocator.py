"""The allocator hooks apply on glibc, are scoped, and are no-ops elsewhere."""

from __future__ import annotations

import ctypes
import platform

import pytest

import agrisat.allocator as alloc
from agrisat.allocator import detection_allocator, trim_heap

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_detection_allocator_applies_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    import agrisat.allocator as alloc

    calls: list[tuple[int, int]] = []
    real = alloc._libc()
    assert real is not None

    class Spy:
        def mallopt(self, param: int, value: int) -> int:
            calls.append((param, value))
            return int(real.mallopt(param, value))

        def malloc_trim(self, pad: int) -> int:
            return int(real.malloc_trim(pad))

    monkeypatch.setattr(alloc, "_libc", lambda: Spy())
    with detection_allocator(1024) as applied:
        assert applied is True
        assert calls == [(-3, 1 << 20)]  # M_MMAP_THRESHOLD = 1 MiB inside
    assert calls[-1] == (-3, 32 << 20)  # and glibc's adaptive ceiling after
    with pytest.raises(RuntimeError), detection_allocator(512):
        raise RuntimeError("detection failed")
    assert calls[-2:] == [(-3, 512 << 10), (-3, 32 << 20)]  # restored on an error too
    calls.clear()
    with detection_allocator(0) as applied:  # 0: the allocator is left alone
        assert applied is False
    assert calls == []


def test_trim_heap_releases_arrow_and_trims_the_c_heap(monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa

    import agrisat.allocator as alloc

    trims: list[int] = []
    released: list[bool] = []

    class Libc:
        def malloc_trim(self, pad: int) -> int:
            trims.append(pad)
            return 1

    class Pool:
        def release_unused(self) -> None:
            released.append(True)

    monkeypatch.setattr(alloc, "_libc", lambda: Libc())
    monkeypatch.setattr(pa, "default_memory_pool", lambda: Pool())
    assert trim_heap() is True
    assert trims == [0] and released == [True]  # the whole free heap top, and Arrow's pool


def test_allocator_hooks_are_harmless_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_libc(*args: object, **kwargs: object) -> None:
        raise OSError("no C library here")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    alloc._libc.cache_clear()  # the C library is looked up once per process
    try:
        with detection_allocator(1024) as applied:
            assert applied is False
        assert trim_heap() is False
    finally:
        alloc._libc.cache_clear()
