"""Ending the console-script process without the interpreter's teardown."""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

__all__ = ["exit_now"]


def exit_now(code: int) -> NoReturn:
    """End the process with ``code`` once its output and exit handlers are done, skipping the
    interpreter's teardown.

    Why: after a 100,000-farm run the teardown (freeing every module's objects, joining idle
    worker threads) took 0.3-0.6 s of a 13 s process, with nothing left to do. What a normal
    exit guarantees is kept: stdout and stderr are flushed, the log handlers closed and the
    ``atexit`` handlers run (temporary folders, coverage data, ...). Every file the commands
    write is closed (and renamed into place) before they return.
    """
    import atexit

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed or broken pipe: let the normal exit report it
        sys.exit(code)
    logging.shutdown()
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(code)
