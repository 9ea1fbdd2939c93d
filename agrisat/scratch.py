"""Private scratch folders that do not outlive a killed run.

A run killed outright (SIGKILL, power loss) cannot remove its temporary folders. Those hold
farm polygons (the weights pool's jobs) or observation rows (a long recomputation's steps):
borrowers' data that must not stay behind. Each folder is named with its process id; making
a new one first removes the folders of the same kind whose process is gone.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

__all__ = ["scratch_dir", "sweep_stale"]

log = logging.getLogger(__name__)


def scratch_dir(parent: Path, prefix: str) -> Path:
    """A new private folder ``<parent>/<prefix><pid>-<random>``, after removing the
    folders of dead processes with the same prefix (:func:`sweep_stale`). The caller
    removes it when done."""
    sweep_stale(parent, prefix)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))


def sweep_stale(parent: Path, prefix: str) -> None:
    """Remove ``parent``'s ``<prefix><pid>-*`` folders whose process is gone.

    A folder is removed only when it is ours (same user) and its process no longer exists;
    a live process, or one we may not signal, keeps its folder.
    """
    pattern = re.compile(re.escape(prefix) + r"(\d+)-")
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for path in entries:
        m = pattern.match(path.name)
        if not m or not path.is_dir() or int(m.group(1)) == os.getpid():
            continue
        try:
            if path.stat().st_uid != os.getuid():
                continue
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:  # its run is gone
            shutil.rmtree(path, ignore_errors=True)
            log.info("removed the scratch folder of a run that was killed: %s", path.name)
        except (OSError, OverflowError):  # alive under another user, or not ours to judge
            continue
