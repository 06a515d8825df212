"""What every route and part of the control plane shares."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from labwork.settings import Settings
from labwork.store.db import Store


@dataclass
class Context:
    settings: Settings
    store: Store
    token: str
    url: str = ""  # the control plane's own base URL, once known
    # Parts attach their long-lived objects here (e.g. "servers": ServerManager, "gateway": ...).
    parts: dict[str, Any] = field(default_factory=dict)
    startup: list[Callable[[], Any]] = field(default_factory=list)
    shutdown: list[Callable[[], Any]] = field(default_factory=list)
