"""The environment check (pip check, seconds of work) cached for the Jupyter page's alert.

A project's run configurations are grouped by interpreter (most share labwork's own); each
interpreter is checked once in a background thread and the answer is kept until its site-packages
folder changes (a package installed or removed) or someone asks for a new check.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labwork.errors import LabworkError


def _site_stamp(python: str) -> float:
    """The newest mtime of the interpreter's site-packages folders (changes on install/remove)."""
    prefix = Path(python).parent.parent
    stamp = 0.0
    for sp in list(prefix.glob("lib/python3*/site-packages")) + list(prefix.glob("lib/python3/dist-packages")):
        try:
            stamp = max(stamp, sp.stat().st_mtime)
        except OSError:
            pass
    return stamp


@dataclass
class Check:
    python: str
    runconfig: str
    stamp: float
    state: str = "checking"  # checking | done | error
    result: dict[str, Any] | None = None
    error: str | None = None
    checked_at: float | None = None


@dataclass
class EnvChecks:
    _checks: dict[str, Check] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def status(self, root: str | Path, settings: Any, *, force: bool = False) -> dict[str, Any]:
        """The project's environment check as far as it is known; starts the checks it lacks.

        {"state": "checking"|"done", "environments": [...], "conflicts": [...], "jupyter_breaking": n,
         "unprepared": [runconfig...], "errors": [...]}"""
        from labwork.kernels.environments import environment_for
        from labwork.project.files import load_project

        project = load_project(root)
        by_python: dict[str, list[str]] = {}
        unprepared: list[str] = []
        errors: list[str] = []
        for name in sorted(project.runconfigs):
            try:
                env = environment_for(project, name, settings)
            except LabworkError as exc:
                errors.append(f"{name}: {exc.message}")
                continue
            if not env.prepared:
                unprepared.append(name)
                continue
            by_python.setdefault(env.python, []).append(name)
        environments = []
        for python, names in by_python.items():
            check = self._ensure(project, names[0], python, settings, force=force)
            environments.append({"python": python, "runconfigs": names, "state": check.state,
                                 "result": check.result, "error": check.error, "checked_at": check.checked_at})
        conflicts = []
        for env in environments:
            for c in (env["result"] or {}).get("conflicts", []):
                conflicts.append(c | {"runconfigs": env["runconfigs"], "python": env["python"]})
        conflicts.sort(key=lambda c: (not c.get("breaks_jupyter"), c.get("package", "").lower()))
        state = "checking" if any(e["state"] == "checking" for e in environments) else "done"
        errors += [f"{', '.join(e['runconfigs'])}: {e['error']}" for e in environments if e["error"]]
        return {"state": state, "environments": environments, "conflicts": conflicts,
                "jupyter_breaking": sum(1 for c in conflicts if c.get("breaks_jupyter")),
                "unprepared": unprepared, "errors": errors}

    def _ensure(self, project: Any, rc_name: str, python: str, settings: Any, *, force: bool) -> Check:
        stamp = _site_stamp(python)
        with self._lock:
            check = self._checks.get(python)
            if check is not None and check.state == "checking":
                return check
            if check is not None and not force and check.stamp == stamp:
                return check
            check = Check(python=python, runconfig=rc_name, stamp=stamp)
            self._checks[python] = check
        threading.Thread(target=self._run, args=(check, project, settings), name="dashboard-envcheck",
                         daemon=True).start()
        return check

    @staticmethod
    def _run(check: Check, project: Any, settings: Any) -> None:
        from labwork.kernels.envcheck import check_environment
        try:
            check.result = check_environment(project, check.runconfig, settings)
            check.state = "done"
        except LabworkError as exc:
            check.error = exc.message
            check.state = "error"
        except Exception as exc:  # pip missing, timeout, ...
            check.error = f"{type(exc).__name__}: {exc}"
            check.state = "error"
        finally:
            check.checked_at = time.time()
