"""JupyterLab in Chromium (Playwright): open a notebook of a started server and wait until it is
usable (its cell editor shown, its kernel idle); the labwork status bar item."""
from __future__ import annotations

from typing import Any

USABLE = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator[data-status='idle']"
EDITOR = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell .cm-content"
TIME_LEFT = ".labwork-TimeLeft"
TOAST = ".Toastify__toast"


def lab_url(server: dict[str, Any], path: str = "") -> str:
    """The JupyterLab address of `path` with the server's token (as `server_url` gives it)."""
    return f"{server['base_url']}/lab/tree/{path}?token={server['token']}"


def open_notebook(page: Any, server: dict[str, Any], path: str, timeout: float = 120_000) -> None:
    """Open `path` in JupyterLab and wait until it can run a cell."""
    page.goto(lab_url(server, path))
    page.wait_for_selector(EDITOR, timeout=timeout)
    page.wait_for_selector(USABLE, timeout=timeout)


def toast_with(page: Any, text: str, timeout: float = 60_000) -> Any:
    """The notification (JupyterLab 4's toasts) whose text holds `text`, once shown."""
    toast = page.locator(TOAST, has_text=text).first
    toast.wait_for(timeout=timeout)
    return toast
