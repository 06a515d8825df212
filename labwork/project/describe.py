"""A project's targets, run configurations and problems as plain data (API, CLI, dashboard)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from labwork.project.files import load_project


def describe_project(folder: str | Path) -> dict[str, Any]:
    p = load_project(folder)
    return {
        "name": p.name,
        "path": str(p.root),
        "default_runconfig": p.default_runconfig,
        "targets": {n: t.model_dump(mode="json") for n, t in sorted(p.targets.items())},
        "runconfigs": {n: rc.model_dump(mode="json") for n, rc in sorted(p.runconfigs.items())},
        "problems": [{"where": e.where, "msg": e.message, "key": e.details.get("key"),
                      "name": e.details.get("name")} for e in p.problems],
    }
