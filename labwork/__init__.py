"""labwork: a self-hosted notebook workbench.

`%load_ext labwork` loads the run-history magics; `from labwork import get_logger` logs values.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def load_ipython_extension(ipython: Any) -> None:
    from labwork.history.magics import load_ipython_extension as _load
    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from labwork.history.magics import unload_ipython_extension as _unload
    _unload(ipython)


def get_logger() -> Any:
    """The run logger of this kernel: `get_logger().log(name, value)`."""
    from labwork.history.logger import get_logger as _get
    return _get()


__all__ = ["__version__", "get_logger", "load_ipython_extension", "unload_ipython_extension"]
