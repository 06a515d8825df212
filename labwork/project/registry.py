"""Projects known to the control plane (registered by `labwork init` or the dashboard)."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from labwork.errors import NotFound
from labwork.inputs import check_path_text, parse_id
from labwork.project.files import find_root, load_project
from labwork.store.db import Store
from labwork.store.tables import ProjectRow


def project_dict(row: ProjectRow) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "path": row.path,
            "registered_at": row.registered_at.isoformat() if row.registered_at else None}


def register_project(store: Store, folder: str | Path) -> dict[str, Any]:
    """Register (or refresh the name of) the project in `folder`; it must be a labwork project."""
    check_path_text(str(folder), "path")
    project = load_project(find_root(folder) if _exists(str(folder)) else folder)
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


def _exists(text: str) -> bool:
    """Whether `text` names an existing path (an over-long or odd name is simply not one)."""
    try:
        return Path(text).exists()
    except (OSError, ValueError):
        return False


def get_project_row(store: Store, ref: int | str | Path) -> dict[str, Any]:
    """A registered project by id, path or name; an unregistered project folder is registered."""
    number = parse_id(ref) if isinstance(ref, (int, str)) else None
    if isinstance(ref, int) and number is None:
        raise NotFound(f"no project {ref}")
    text = str(ref)
    if "\x00" in text or len(text) > 4096:
        raise NotFound("no such project (the reference is not a name, an id or a folder)")
    with store.session() as s:
        if number is not None:
            row = s.get(ProjectRow, number)
            if row:
                return project_dict(row)
        else:
            if _exists(text):
                root = str(find_root(text))
                row = s.scalar(select(ProjectRow).where(ProjectRow.path == root))
                if row:
                    return project_dict(row)
            else:
                row = s.scalar(select(ProjectRow).where(ProjectRow.name == text))
                if row:
                    return project_dict(row)
    if number is None and _exists(text):
        return register_project(store, ref)
    raise NotFound(f"no project '{ref}'", hint="register it with 'labwork init DIR' or by folder in the dashboard")
