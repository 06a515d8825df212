"""`labwork env check`: `pip check` in a run configuration's environment, Jupyter-breaking
conflicts first (Hopsworks' "conflicting libraries" alert)."""
from __future__ import annotations

import json
import re
import subprocess
from dataclasses import asdict, dataclass
from typing import Any

from labwork.errors import Unavailable
from labwork.kernels.environments import environment_for
from labwork.project.files import Project
from labwork.settings import Settings

JUPYTER_ROOTS = ("jupyter_server", "ipykernel", "jupyterlab")

# Runs inside the checked environment: the dependency closure of Jupyter's own packages there.
_CLOSURE = r"""
import json, re, sys
from importlib import metadata
def norm(n): return re.sub(r"[-_.]+", "-", n).lower()
seen, todo = set(), [norm(r) for r in sys.argv[1:]]
while todo:
    name = todo.pop()
    if name in seen: continue
    seen.add(name)
    try: reqs = metadata.requires(name) or []
    except metadata.PackageNotFoundError: continue
    for r in reqs:
        if "extra ==" in r: continue
        m = re.match(r"[A-Za-z0-9_.\-]+", r)
        if m: todo.append(norm(m.group(0)))
print(json.dumps(sorted(seen)))
"""
_LINE = re.compile(r"^(?P<pkg>[A-Za-z0-9_.\-]+) (?P<ver>\S+) (?:has requirement|requires) (?P<req>[A-Za-z0-9_.\-]+)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Conflict:
    package: str
    version: str
    requirement: str
    message: str
    breaks_jupyter: bool


def check_environment(project: Project, rc_name: str, settings: Settings) -> dict[str, Any]:
    """Conflicts reported by `pip check`, those touching Jupyter's dependencies first."""
    env = environment_for(project, rc_name, settings)
    if not env.prepared:
        raise Unavailable(f"the environment of run configuration '{rc_name}' is not prepared",
                          hint=f"labwork experiment prepare --runconfig {rc_name}",
                          hints={"dashboard": f"press Prepare in the row of '{rc_name}' on the project's Compute page"})
    proc = subprocess.run([env.python, "-m", "pip", "check", "--disable-pip-version-check"],
                          capture_output=True, text=True, timeout=300)
    closure_proc = subprocess.run([env.python, "-c", _CLOSURE, *JUPYTER_ROOTS],
                                  capture_output=True, text=True, timeout=120)
    jupyter = set(json.loads(closure_proc.stdout or "[]"))
    conflicts: list[Conflict] = []
    for line in proc.stdout.splitlines():
        m = _LINE.match(line.strip())
        if not m:
            continue
        breaks = _norm(m["pkg"]) in jupyter or _norm(m["req"]) in jupyter
        conflicts.append(Conflict(m["pkg"], m["ver"], m["req"], line.strip(), breaks))
    conflicts.sort(key=lambda c: (not c.breaks_jupyter, c.package.lower()))
    return {"runconfig": rc_name, "python": env.python, "ok": not conflicts,
            "conflicts": [asdict(c) for c in conflicts],
            "jupyter_breaking": sum(c.breaks_jupyter for c in conflicts)}
