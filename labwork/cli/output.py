"""Console output shared by the commands: rich tables for people, `--json` for scripts.

rich is imported on first use, not when a command module is imported: `labwork --help` and the
commands that print nothing through it do not pay for it.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


class _LazyConsole:
    """Stands for a rich `Console` made at its first use (every attribute is the console's)."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            self._console = _console(self._stderr)
        return getattr(self._console, name)


def _console(stderr: bool = False) -> Console:
    """A console that never cuts a line where nobody sees the cut: in a terminal rich wraps to its
    width; piped or captured (no terminal, where rich would assume 80 columns) lines are as long as
    they need to be."""
    from rich.console import Console
    c = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not c.is_terminal:
        c.width = 1000
    return c


console = _LazyConsole(stderr=False)
err_console = _LazyConsole(stderr=True)

# Columns of identifiers copied whole: kept on one line (other columns wrap around them). Long
# values (URLs, paths) fold over lines in a narrow terminal, never cut.
UNBROKEN = {"id", "run", "app id", "name"}


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None,
                unbroken: Iterable[str] = ()) -> None:
    """A table whose cells lose no character: every column folds instead of cutting with '…'."""
    from rich.table import Table
    from rich.text import Text
    keep = UNBROKEN | {c.lower() for c in unbroken}
    table = Table(title=title)
    for col in columns:
        table.add_column(col, overflow="fold", no_wrap=col.lower() in keep)
    for row in rows:
        table.add_row(*[Text("" if v is None else str(v)) for v in row])  # values are not markup
    console.print(table)


def print_log(fetch: Callable[[int], dict[str, Any]], *, follow: bool) -> None:
    """Print a kept log from offset 0: `fetch(offset)` answers one chunk (`text`, `offset`, `eof`,
    `active`, as the server and job-run log routes do); with `follow`, keep printing while the
    log's owner is active. Ctrl-C ends it quietly."""
    import sys
    import time

    offset = 0
    try:
        while True:
            chunk = fetch(offset)
            sys.stdout.write(chunk["text"])
            sys.stdout.flush()
            offset = chunk["offset"]
            if not chunk["eof"]:
                continue
            if not follow or not chunk["active"]:
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass

