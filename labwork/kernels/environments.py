"""Python environments of run configurations (`labwork experiment prepare`).

A run configuration without a requirements file runs in labwork's own interpreter. One with a
requirements file gets a virtual environment under `LABWORK_HOME/envs/<hash>`, keyed by the
file's content and the base interpreter, so it is reused until the requirements change.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from labwork.errors import ConfigError, LabworkError
from labwork.project.files import Project
from labwork.settings import Settings

KERNEL_PACKAGES = ["ipykernel>=6.29"]
Progress = Callable[[str], None]


@dataclass
class Environment:
    python: str
    path: Path | None  # None: labwork's own interpreter
    prepared: bool
    requirements: Path | None = None

    @property
    def is_current(self) -> bool:
        return self.path is None


def _requirements_file(project: Project, rc_name: str) -> Path | None:
    rc = project.runconfig(rc_name)
    if not rc.environment.requirements:
        return None
    where = str(project.config_dir / "runconfig" / f"{rc_name}.toml")
    req = (project.root / rc.environment.requirements).resolve()
    if not req.is_relative_to(project.root):
        raise ConfigError(f"key 'environment.requirements': {rc.environment.requirements!r} is outside the project",
                          where=where)
    if not req.is_file():
        raise ConfigError(f"key 'environment.requirements': file {rc.environment.requirements!r} does not exist",
                          where=where)
    return req


def _key(req: Path, base_python: str) -> str:
    h = hashlib.sha256()
    h.update(req.read_bytes())
    h.update(os.path.realpath(base_python).encode())
    h.update(json.dumps(KERNEL_PACKAGES).encode())
    return h.hexdigest()[:16]


def environment_for(project: Project, rc_name: str, settings: Settings) -> Environment:
    """Where the run configuration's kernel runs, and whether that environment is ready."""
    req = _requirements_file(project, rc_name)
    if req is None:
        return Environment(python=sys.executable, path=None, prepared=True)
    base = project.runconfig(rc_name).environment.python or sys.executable
    path = settings.envs_dir / _key(req, base)
    return Environment(python=str(path / "bin" / "python"), path=path,
                       prepared=(path / ".ready").is_file(), requirements=req)


def _run(cmd: list[str], progress: Progress) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        if line:
            tail = (tail + [line])[-20:]
            progress(line)
    if proc.wait() != 0:
        raise LabworkError(f"'{' '.join(cmd[:4])} ...' failed (exit {proc.returncode})",
                           details={"output": "\n".join(tail)}, hint=tail[-1] if tail else None)


def prepare_environment(project: Project, rc_name: str, settings: Settings,
                        progress: Progress = lambda _line: None) -> Environment:
    """Build (or reuse) the run configuration's virtual environment; progress gets each line."""
    env = environment_for(project, rc_name, settings)
    if env.is_current:
        progress(f"run configuration '{rc_name}' uses labwork's interpreter ({env.python}); nothing to build")
        return env
    if env.prepared:
        progress(f"environment for '{rc_name}' is up to date ({env.path}); reusing it")
        return env
    assert env.path is not None and env.requirements is not None
    base = project.runconfig(rc_name).environment.python or sys.executable
    tmp = env.path.with_name(env.path.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    progress(f"[1/3] creating virtual environment with {base}")
    _run([base, "-m", "venv", str(tmp)], progress)
    py = str(tmp / "bin" / "python")
    progress(f"[2/3] installing the kernel ({', '.join(KERNEL_PACKAGES)})")
    _run([py, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off",
          *KERNEL_PACKAGES], progress)
    progress(f"[3/3] installing {env.requirements.relative_to(project.root)}")
    _run([py, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off",
          "-r", str(env.requirements)], progress)
    (tmp / ".ready").write_text(json.dumps({"project": str(project.root), "runconfig": rc_name,
                                            "requirements": str(env.requirements), "built": time.time()}))
    shutil.rmtree(env.path, ignore_errors=True)
    tmp.rename(env.path)
    progress(f"environment ready in {time.monotonic() - started:.0f}s: {env.path}")
    return environment_for(project, rc_name, settings)


def labwork_shim(settings: Settings) -> Path:
    """A folder holding only the `labwork` package, for PYTHONPATH in foreign environments.

    The kernel-side code (magics, logger, launcher) needs only the standard library and IPython,
    so a run configuration's own environment gets labwork without labwork's dependencies.
    """
    import labwork
    shim = settings.home / "kernel-path"
    link = shim / "labwork"
    target = Path(labwork.__file__).parent
    if not (link.is_symlink() and link.resolve() == target.resolve()):
        shim.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target, target_is_directory=True)
    return shim
