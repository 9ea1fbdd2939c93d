"""A Prefect flow for the nightly run: the same entry point as cron (``agrisat-nightly.sh``).

Deploy with, e.g.::

    prefect deploy workflows/prefect/nightly_flow.py:nightly --cron "15 2 * * *"

Prefect is not an agrisat dependency; install it where the flow runs.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

from prefect import flow, get_run_logger, task

WRAPPER = Path(__file__).resolve().parents[1] / "cron" / "agrisat-nightly.sh"


@task(retries=0)
def agrisat_night(book: str, workdir: str, catalog: str | None, end: str) -> int:
    """Run the wrapper; its exit status says what happened (see the wrapper's header)."""
    env = {**os.environ, "AGRISAT_BOOK": book, "AGRISAT_WORKDIR": workdir, "AGRISAT_END": end}
    if catalog:
        env["AGRISAT_CATALOG"] = catalog
    return subprocess.run([str(WRAPPER)], env=env, check=False).returncode


@flow(name="agrisat-nightly")
def nightly(book: str, workdir: str, catalog: str | None = None, end: str | None = None) -> int:
    """One night: ingest, detect, export. Fails the flow run on 1 and 2; warns on 3."""
    logger = get_run_logger()
    end = end or dt.datetime.now(dt.UTC).date().isoformat()
    status = agrisat_night(book, workdir, catalog, end)
    if status == 3:
        logger.warning("agrisat %s: some scenes failed; they are retried next night", end)
    elif status != 0:
        raise RuntimeError(f"agrisat nightly run for {end} failed with status {status}")
    return status
