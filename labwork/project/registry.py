"""Projects known to the control plane (registered by `labwork init` or the dashboard)."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from labwork.errors import NotFound
from labwork.project.files import find_root, load_project
from labwork.store.db import Store
from labwork.store.tables import ProjectRow


def project_dict(row: ProjectRow) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "path": row.path,
            "registered_at": row.registered_at.isoformat() if row.registered_at else None}


def register_project(store: Store, folder: str | Path) -> dict[str, Any]:
    """Register (or refresh the name of) the project in `folder`; it must be a labwork project."""
    project = load_project(find_root(folder) if Path(folder).exists() else folder)
    path = str(project.root)
    with store.session() as s:
        row = s.scalar(select(ProjectRow).where(ProjectRow.path == path))
        if row is None:
            row = ProjectRow(name=project.name, path=path, registered_at=datetime.now(UTC))
            s.add(row)
        else:
            row.name = project.name
        s.flush()
        return project_dict(row)


def list_projects(store: Store) -> list[dict[str, Any]]:
    with store.session() as s:
        return [project_dict(r) for r in s.scalars(select(ProjectRow).order_by(ProjectRow.name))]


def get_project_row(store: Store, ref: int | str | Path) -> dict[str, Any]:
    """A registered project by id, path or name; an unregistered project folder is registered."""
    with store.session() as s:
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            row = s.get(ProjectRow, int(ref))
            if row:
                return project_dict(row)
        else:
            text = str(ref)
            if Path(text).exists():
                root = str(find_root(text))
                row = s.scalar(select(ProjectRow).where(ProjectRow.path == root))
                if row:
                    return project_dict(row)
            else:
                row = s.scalar(select(ProjectRow).where(ProjectRow.name == text))
                if row:
                    return project_dict(row)
    if not (isinstance(ref, int) or str(ref).isdigit()) and Path(str(ref)).exists():
        return register_project(store, ref)
    raise NotFound(f"no project '{ref}'", hint="register it with 'labwork init DIR' or by folder in the dashboard",
                   hints={"dashboard": "the Projects page lists the registered projects; add one there by its folder"})
