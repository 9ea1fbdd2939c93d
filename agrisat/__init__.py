"""agrisat: early warning for agricultural loans from Sentinel-2 imagery."""

from __future__ import annotations

from .errors import AgrisatError

__version__ = "0.1.0"

__all__ = ["AgrisatError", "__version__"]
