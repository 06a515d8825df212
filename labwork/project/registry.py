"""Projects known to the control plane (registered by `labwork init` or the dashboard)."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from labwork.errors import LabworkError, NotFound
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


def _is_path(text: str) -> bool:
    return "/" in text or "\\" in text or text in (".", "..") or text.startswith("~")


def get_project_row(store: Store, ref: int | str | Path, *, register: bool = False) -> dict[str, Any]:
    """A registered project by id, name or absolute folder path.

    A path must be absolute: a relative one would be resolved against the control plane's working
    directory, not the caller's (400). An unregistered project folder is registered only when
    `register` is true, which only state-changing requests ask for (a GET changes nothing)."""
    text = str(ref)
    if "\x00" in text or len(text) > 4096:
        raise NotFound("no such project (the reference is not a name, an id or a folder)")
    if isinstance(ref, Path) or (isinstance(ref, str) and _is_path(ref)):
        if not Path(text).is_absolute():
            raise LabworkError(f"'{text}' is a relative path: a project is named by its id, its name "
                               "or its absolute folder path", where="project")
        with store.session() as s:
            root = str(find_root(text)) if _exists(text) else text
            row = s.scalar(select(ProjectRow).where(ProjectRow.path == root))
            if row:
                return project_dict(row)
        if register and _exists(text):
            return register_project(store, text)
        raise NotFound(f"no registered project at '{text}'",
                       hint="register it with 'labwork init DIR' or by folder in the dashboard")
    with store.session() as s:
        if isinstance(ref, int) or text.isascii() and text.isdigit():  # '²' is a name, not an id
            number = parse_id(ref)
            row = s.get(ProjectRow, number) if number is not None else None
        else:
            row = s.scalar(select(ProjectRow).where(ProjectRow.name == text))
        if row:
            return project_dict(row)
    raise NotFound(f"no project '{ref}'", hint="register it with 'labwork init DIR' or by folder in the dashboard")
