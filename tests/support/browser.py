"""Playwright helpers for the dashboard tests (Debian's chromium, headless)."""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.support.control_plane import ARTIFACTS, ControlPlane

SHOTS = ARTIFACTS / "dashboard"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def login(page: Any, cp: ControlPlane, path: str = "/") -> None:
    """Open `path` with ?token= as the URL `labwork serve` prints (sets the session cookie)."""
    sep = "&" if "?" in path else "?"
    page.goto(f"{cp.url}{path}{sep}token={cp.token}")


@contextmanager
def password_logins(browser: Any, cp: ControlPlane, passwords: dict[str, str]) -> Iterator[dict[str, Any]]:
    """A page per user, each in a browser context of its own (its own cookies), logged in with the
    log-in form; the contexts are closed on the way out."""
    pages: dict[str, Any] = {}
    try:
        for name, password in passwords.items():
            page = pages[name] = browser.new_context().new_page()
            page.goto(f"{cp.url}/login")
            page.fill("input[name=user]", name)
            page.fill("input[name=password]", password)
            page.click("#login-form button[type=submit]")
            page.wait_for_url(f"{cp.url}/")
        yield pages
    finally:
        for page in pages.values():
            page.context.close()


def shot(page: Any, name: str) -> None:
    """A full-page screenshot into test-artifacts/dashboard/NAME.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def seconds(text: str) -> int:
    """'5 h 59 min 58 s' -> seconds."""
    m = re.search(r"(\d+) h (\d+) min (\d+) s", text)
    assert m, f"not a time left: {text!r}"
    h, mi, s = (int(x) for x in m.groups())
    return h * 3600 + mi * 60 + s
