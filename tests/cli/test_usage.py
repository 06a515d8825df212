"""The `labwork` command as a person mistyping it meets it: click's one-line usage errors, exit
2, no traceback; `--help` shows flags as flags; tables keep ids and URLs whole."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _labwork(*args: str, home: Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, LABWORK_HOME=str(home), COLUMNS="80")
    return subprocess.run([sys.executable, "-m", "labwork", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, says", [
    (("notebok", "status"), "No such command 'notebok'"),
    (("notebook", "extend", "--hours", "abc"), "Invalid value for '--hours'"),
    (("--bogus",), "No such option: --bogus"),
    (("notebook", "list", "--bogus"), "No such option: --bogus"),
    (("run", "list", "--limit"), "requires an argument"),
])
def test_usage_errors_are_one_line_and_exit_2(args: tuple[str, ...], says: str, tmp_path: Path) -> None:
    proc = _labwork(*args, home=tmp_path / "home")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.startswith(("Usage: labwork ", "Error: ")) and not proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and says in errors[0], proc.stderr
    assert not (tmp_path / "home" / "control.json").exists()  # nothing was started


def test_bare_labwork_shows_help_and_exits_2(tmp_path: Path) -> None:
    proc = _labwork(home=tmp_path / "home")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout
    assert "Usage: labwork" in proc.stdout + proc.stderr and "notebook" in proc.stdout + proc.stderr


def test_top_level_help_lists_every_command_and_a_group_runs_alone(tmp_path: Path) -> None:
    """A command line naming a group registers only that group; the top-level help still knows all."""
    from labwork.cli import GROUPS
    top = _labwork("--help", home=tmp_path / "home")
    assert top.returncode == 0, top.stderr
    for name in [*GROUPS, "init", "serve"]:
        assert f" {name} " in top.stdout, (name, top.stdout)
    group = _labwork("notebook", "--help", home=tmp_path / "home")
    assert group.returncode == 0 and "Usage: labwork notebook" in group.stdout, group.stderr
    assert " start " in group.stdout and " stop " in group.stdout


def test_labwork_errors_keep_their_exit_code(tmp_path: Path) -> None:
    proc = _labwork("runconfig", "list", "--project", str(tmp_path), home=tmp_path / "home")
    assert proc.returncode == 3 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [("notebook", "list"), ("notebook", "start"), ("run", "list"),
                                  ("spark", "sessions"), ("init",)])
def test_help_shows_booleans_as_flags(args: tuple[str, ...], tmp_path: Path) -> None:
    proc = _labwork(*args, "--help", home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr
    assert "BOOLEAN" not in proc.stdout and "<bool>" not in proc.stdout, proc.stdout
    flag_lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip().startswith(("--json", "--help"))]
    assert flag_lines and all(ln.split()[0] in ("--json", "--help") and "<" not in ln.split()[1]
                              for ln in flag_lines if len(ln.split()) > 1), flag_lines


def test_piped_tables_keep_long_names_whole(tmp_path: Path, project_dir: Path) -> None:
    long_name = "an_unusually_long_run_configuration_name_for_nightly_training_x"  # 63 characters
    attach = _labwork("computetarget", "attach", "local", "--name", long_name, "--project", str(project_dir),
                      home=tmp_path / "home")
    assert attach.returncode == 0, attach.stderr
    proc = _labwork("runconfig", "list", "--project", str(project_dir), home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout
    assert f"myProj {long_name}" in proc.stdout  # the kernel name on one line, whole


def test_tables_in_a_narrow_terminal_fold_instead_of_cutting(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from labwork.cli import output
    buf = io.StringIO()
    monkeypatch.setattr(output, "console", Console(file=buf, width=80, force_terminal=True, color_system=None))
    url = "http://127.0.0.1:8790/projects/12/jupyter/lab/tree/analysis.ipynb?token=" + "t" * 43
    output.print_table(["id", "project", "state", "url"], [("1234567890abcdef", "myIris", "running", url)])
    text = buf.getvalue()
    assert "…" not in text
    assert "1234567890abcdef" in text  # the id stays on one line
    cells = "".join(line.split("│")[4].strip() for line in text.splitlines() if line.count("│") >= 5)
    assert cells == url  # the URL folds over lines but loses no character
