"""Path options of the command line: refused early when empty or unusable (one line, exit 2)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import typer

from .errors import ConfigError

__all__ = ["PATH_ERRNOS", "check_out", "path_option"]


def path_option(*names: str, help: str) -> Any:
    """A path option that refuses an empty value: ``Path("")`` is ``.``, so ``--workdir ""``
    (an unset shell variable) would otherwise run in the current folder."""

    def parse(value: str) -> Path:
        if not str(value).strip():
            raise ConfigError(f"{names[0]} is empty: give a path")
        return Path(value)

    return typer.Option(*names, help=help, parser=parse, metavar="PATH")


def check_out(path: Path | None) -> None:
    """Refuse, before any work, an ``--out`` that is a folder, a pipe or device (an export
    replaces it with an ordinary file), under a file, or in a folder nobody may write to."""
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"--out {path} is a folder: give a file name in it")
    if path.exists() and not stat.S_ISREG(path.stat().st_mode):
        raise ConfigError(f"--out {path} is not a regular file (a pipe or device): give a file")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the exporters create missing folders: check where they start
    if not folder.is_dir():
        raise ConfigError(f"--out {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {path}: folder {folder} is not writable")


#: OSErrors of a path the user gave (``--out``, ``--book``): one line, exit 2, no traceback
PATH_ERRNOS = (errno.EISDIR, errno.ENOTDIR, errno.ENOENT, errno.EACCES, errno.EPERM)
