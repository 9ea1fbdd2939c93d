"""Files replaced atomically: written beside the target under a temporary name, then
``os.replace``d over it, so a reader (or a crash) sees the old file or the new one, never a part.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import ConfigError

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text"]


@functools.cache
def _umask() -> int:
    # read once: os.umask can only be read by setting it
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _temporary(folder: Path, prefix: str, suffix: str) -> Iterator[Path]:
    """A temporary file in ``folder``, deleted when the block ends unless published."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield Path(tmp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _publish(tmp: Path, target: Path) -> None:
    """Give ``tmp`` the permissions a plain ``open`` would (mkstemp's are 0600: an export is
    readable by whoever the workdir is shared with) and move it to ``target`` atomically."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, target)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    Raises
    ------
    ConfigError
        When ``path`` exists and is not a regular file (a FIFO, a device, a folder):
        ``os.replace`` would put an ordinary file in its place (as root, even over a device).
    OSError
        When no file can be made beside ``path``; it names ``path``, not the temporary file.
    """
    target = Path(path)
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISREG(os.stat(target).st_mode):
            raise ConfigError(
                f"{target} exists and is not a regular file (a pipe, device or folder); "
                "an export replaces its target: give the path of a file"
            )
    with contextlib.ExitStack() as stack:
        try:
            # the temporary name keeps the target's suffix: writers pick their format from it
            tmp = stack.enter_context(
                _temporary(target.parent, f".{target.name}.", f".tmp{target.suffix}")
            )
        except OSError as exc:
            # the user gave ``target``; the temporary's name would only confuse
            raise OSError(exc.errno, exc.strerror, str(target)) from exc
        yield tmp
        _publish(tmp, target)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    return atomic_write_bytes(path, text.encode("utf-8"))
