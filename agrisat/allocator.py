"""The C allocator, where a run's memory is decided: glibc's ``mallopt`` and ``malloc_trim``.

Three uses, each measured (see the callers' settings):

- :func:`tune_worker_malloc` on dask workers: the nanny's ``MALLOC_TRIM_THRESHOLD_`` switches
  off glibc's adaptive mmap threshold, so every task's arrays were mapped, faulted in and
  unmapped anew; a 64 MB threshold keeps them on the heap for reuse.
- :func:`trim_heap` before detection: the pixel path's freed pages go back to the OS.
- :func:`detection_allocator` around detection: a small fixed mmap threshold, so the
  thousands of column-sized arrays detection allocates and frees are unmapped when freed
  instead of leaving holes in the heap; restored to a large threshold afterwards.

Where glibc is absent (macOS, musl) every function is a no-op that returns ``False``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

__all__ = ["detection_allocator", "trim_heap", "tune_worker_malloc"]

#: glibc's ``mallopt`` parameter numbers (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: the mmap threshold left after detection: glibc's adaptive ceiling on 64-bit systems, which
#: a long-running process reaches anyway once it has freed a large array
_AFTER_DETECTION = 32 << 20


@functools.cache
def _libc() -> Any | None:
    # cached: find_library starts an ldconfig child process on every call
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 -- glibc has both; others may not
    except (OSError, AttributeError):
        return None
    return libc


def tune_worker_malloc(mmap_mb: int) -> bool:
    """Let glibc keep blocks under ``mmap_mb`` MB on its heap for reuse (a dask worker's).

    Called on each worker through ``Client.run``; a no-op (False) where glibc is absent.
    """
    libc = _libc()
    if libc is None:
        return False
    ok = libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_mb) << 20) == 1
    return ok and libc.mallopt(_M_TRIM_THRESHOLD, 4 * int(mmap_mb) << 20) == 1


def trim_heap() -> bool:
    """Collect garbage and hand the free pages of Arrow's pool and of the C heap back to the
    OS (``malloc_trim``; False where glibc is absent).

    The pixel path frees its arrays before detection, but glibc keeps the freed pages of its
    heap (~300 MB at 100,000 plots x 8 dates) in the process; detection would then peak on
    top of them. Results do not depend on it.
    """
    import gc

    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()  # Arrow's own allocator keeps pages too
    libc = _libc()
    return libc is not None and bool(libc.malloc_trim(0))


@contextlib.contextmanager
def detection_allocator(threshold_kb: int) -> Iterator[bool]:
    """Within the block, blocks of at least ``threshold_kb`` KB get their own mapping, handed
    back to the OS when freed (0: the allocator is left alone). Yields whether it applied.

    Detection allocates and frees column-sized arrays (4.5 MB each at 586,000 looks) by the
    thousand; glibc's adaptive threshold rises after the first such free, so later ones come
    from the heap, whose freed holes it keeps: 70-140 MB of a 100,000-farm first night's peak
    (measured 1,097 -> 1,024 MB). Afterwards the threshold is set to glibc's adaptive
    ceiling (32 MB), so later pixel work in the same process (a notebook) keeps its arrays
    on the heap as it would have. Results do not depend on it.
    """
    libc = _libc() if threshold_kb > 0 else None
    if libc is None:
        yield False
        return
    libc.mallopt(_M_MMAP_THRESHOLD, int(threshold_kb) << 10)
    try:
        yield True
    finally:
        libc.mallopt(_M_MMAP_THRESHOLD, _AFTER_DETECTION)
