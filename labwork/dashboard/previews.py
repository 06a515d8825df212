"""Notebook previews for the dashboard: the library's cache (labwork.notebooks.preview_cache)."""
from __future__ import annotations

from labwork.notebooks.preview_cache import PreviewCache, shared_previews


__all__ = ["PreviewCache", "shared_previews"]
