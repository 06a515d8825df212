"""`labwork notebook start` in its plain forms runs without typer (labwork/cli/start.py); every
other form goes to the typer command. Both end in the same request (tests/notebooks/test_cli.py
runs the start itself, in both forms, against a real control plane)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labwork.cli.start import QUICK_FLAGS, QUICK_VALUES, parse_quick


def test_the_quick_options_are_the_start_commands_own() -> None:
    import typer.main

    from labwork.cli import notebook
    command = typer.main.get_command(notebook.app).commands["start"]  # type: ignore[attr-defined]
    options = {opt: param.name for param in command.params for opt in param.opts}
    for opt, name in {**QUICK_FLAGS, **QUICK_VALUES}.items():
        assert options.get(opt) == name, (opt, name, options)
    assert [p.name for p in command.params if not p.opts[0].startswith("-")] == ["folder"]


@pytest.mark.parametrize("args, parsed", [
    ([], {}),
    (["proj", "--no-browser", "--json"], {"folder": Path("proj"), "no_browser": True, "json": True}),
    (["--hours", "2", "--config", "spark", "--classic"], {"hours": 2.0, "config": "spark", "classic": True}),
    (["--hours", "-1"], {"hours": -1.0}),  # the control plane says what is wrong with it
    (["--no-limit", "."], {"no_limit": True, "folder": Path(".")}),
])
def test_plain_forms_are_parsed(args: list[str], parsed: dict) -> None:
    assert parse_quick(args) == parsed


@pytest.mark.parametrize("args", [
    ["--help"], ["--hours=2"], ["--hours", "abc"], ["--hours", "1e3"], ["--hours"], ["--config"],
    ["--config", "--json"], ["--driver-memory", "2g"], ["-P", "a=b"], ["a", "b"], ["--json", "--json"],
    ["--bogus"], ["-"], [""],
])
def test_other_forms_go_to_typer(args: list[str]) -> None:
    assert parse_quick(args) is None


def _modules_after(args: list[str], home: Path) -> dict:
    """Run `labwork ARGS` in a fresh interpreter; its exit code and whether typer and pydantic
    were imported."""
    code = ("import json, sys\nfrom labwork.cli import main\ntry:\n    main(sys.argv[1:])\n"
            "except SystemExit as exc:\n    code = exc.code\nelse:\n    code = 0\n"
            "print(json.dumps({'code': code, 'typer': 'typer' in sys.modules, "
            "'pydantic': 'pydantic' in sys.modules}))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABWORK_")}
    proc = subprocess.run([sys.executable, "-c", code, *args], env=dict(env, LABWORK_HOME=str(home)),
                          capture_output=True, text=True, timeout=120)
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "stderr": proc.stderr}


def test_a_plain_start_imports_neither_typer_nor_pydantic(tmp_path: Path) -> None:
    # a bad --config fails before the control plane is asked: the quick path's own parse and checks
    quick = _modules_after(["notebook", "start", str(tmp_path), "--no-browser", "--config", "R"], tmp_path / "h")
    assert quick["code"] == 2 and "expected python or spark" in quick["stderr"], quick
    assert not quick["typer"] and not quick["pydantic"], quick
    # the same mistake in a form the quick path leaves to typer: the same answer, through typer
    typed = _modules_after(["notebook", "start", str(tmp_path), "--config=R"], tmp_path / "h")
    assert typed["code"] == 2 and "expected python or spark" in typed["stderr"] and typed["typer"], typed
    assert not (tmp_path / "h" / "control.json").exists()  # nothing was started
