"""`from labwork import get_logger; get_logger().log(name, value)`.

Numbers, strings and flat lists (a list is a series to chart). Logging one name again adds to its
series. A value belongs to the run and, while history is on, to the entry of the cell logging it.
Works with history off and outside any notebook (then the run is this Python process).
"""
from __future__ import annotations

from typing import Any


class RunLogger:
    """The logger of this process's run."""

    def log(self, name: str, value: Any) -> None:
        from labwork.history.recorder import recorder
        recorder().log_value(name, value)

    @property
    def run_id(self) -> str:
        from labwork.history.recorder import recorder
        return recorder().run_id

    def __repr__(self) -> str:
        return f"<labwork RunLogger run={self.run_id}>"


_logger = RunLogger()


def get_logger() -> RunLogger:
    return _logger
