"""One exception base for everything agrisat raises on purpose.

Each subclass carries a message that says what went wrong *and* what to do about it; the CLI
prints that message on one line and exits with :attr:`AgrisatError.exit_code`.
"""

from __future__ import annotations

__all__ = [
    "AgrisatError",
    "BookError",
    "CatalogError",
    "ConfigError",
    "SceneError",
    "StoreError",
    "WorkdirLockedError",
    "unreadable_part",
]


class AgrisatError(Exception):
    """Base class of agrisat's errors. ``exit_code`` is what the CLI exits with."""

    exit_code: int = 2


class ConfigError(AgrisatError):
    """A setting or a command-line option is invalid."""


class BookError(AgrisatError):
    """The loan book as a whole is unusable (unreadable file, missing column, no CRS...)."""


class CatalogError(AgrisatError):
    """The STAC catalog cannot be opened or searched, or an item is unusable."""


class SceneError(AgrisatError):
    """A scene (one STAC item) could not be read; the run goes on without it."""

    exit_code = 3


class StoreError(AgrisatError):
    """The workdir's store is missing, corrupt or was written by an incompatible version."""


class WorkdirLockedError(AgrisatError):
    """Another agrisat run holds the workdir's lock."""

    exit_code = 4


def unreadable_part(path: object, table: str, exc: BaseException) -> StoreError:
    """The error for a store part that cannot be read: what happened and what to do."""
    return StoreError(
        f"store part {path} of table {table!r} is unreadable ({exc}): the workdir was damaged "
        "(a file deleted, cut or changed outside agrisat); restore the workdir from a backup, "
        "or run the book in a new workdir"
    )
