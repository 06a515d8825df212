"""Error hints on the dashboard's pages name what to click or fill in, never the command line's
flags: a library error whose hint (or `where`) names a command or a flag must also give the
dashboard's phrasing (`hints={"dashboard": ...}`), which `labwork.dashboard.web.error_text` shows."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from playwright.sync_api import expect

import labwork
from labwork.dashboard.web import error_text
from labwork.errors import NotFound
from tests.support.browser import login, shot

PACKAGE = Path(labwork.__file__).parent
# Modules only the command line (or a kernel) reaches: their hints may name flags alone.
CLI_ONLY = ("cli/", "server/daemon.py", "server/client.py", "history/magics.py")
COMMAND = re.compile(r"\blabwork (init|serve|notebook|computetarget|runconfig|experiment|run|env|gateway)\b"
                     r"|(^|[\s(])--[a-z]")


def _text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def scan(source: str, rel: str) -> list[str]:
    """`file:line: key='text'` for each call in `source` whose hint or where names a command or a
    flag with no other front end's phrasing (`hints=`)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or any(k.arg == "hints" for k in node.keywords):
            continue
        for k in node.keywords:
            text = _text(k.value) if k.arg in ("hint", "where") else None
            if text and COMMAND.search(text):
                found.append(f"{rel}:{node.lineno}: {k.arg}={text!r}")
    return found


def test_library_hints_have_the_dashboards_phrasing():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if not rel.startswith(CLI_ONLY):
            found += scan(path.read_text(encoding="utf-8"), rel)
    assert found == []


def test_the_scan_and_error_text():
    """A CLI-only hint is found, one with the dashboard's phrasing is not; the page shows that."""
    assert scan('raise NotFound("x", hint="use --no-limit")\n'
                'raise NotFound("y", hint="use --no-limit", hints={"dashboard": "tick no limit"})\n'
                'raise ConfigError("z", where="--name")\n', "m.py") == [
        "m.py:1: hint='use --no-limit'", "m.py:3: where='--name'"]
    err = NotFound("no server", hint="start one with 'labwork notebook start'")
    assert error_text(err) == "no server (hint: start one with 'labwork notebook start')"
    err = NotFound("no server", hint="start one with 'labwork notebook start'", hints={"dashboard": "press Start"})
    assert error_text(err) == "no server (hint: press Start)"
    assert str(err).endswith("hint: start one with 'labwork notebook start'")  # the CLI's, unchanged
    assert err.to_dict()["hint"] == "start one with 'labwork notebook start'"  # the API's too


def test_error_pages_speak_the_dashboards_language(cp, page, project):
    login(page, cp, "/projects/999999/jupyter")
    error = page.locator("#page-error")
    expect(error).to_contain_text("no project '999999'")
    expect(error).to_contain_text("the Projects page lists the registered projects")
    expect(error).not_to_contain_text("labwork init")
    shot(page, "error-page-no-project")
    page.goto(f"{cp.url}/runs/0123456789abcdef/outputs/model.pkl")
    expect(page.locator("#page-error")).to_contain_text("the Run history page lists the runs")
    expect(page.locator("#page-error")).not_to_contain_text("labwork run")
