"""An HTTP client of the control plane's run-history API (`/api/runs...`): what the `labwork run`
commands call. It reads no store; the functions behind the routes are `labwork.history.queries`."""
from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from labwork.errors import Forbidden


def _project_ref(project: str | None) -> str | None:
    """A folder becomes the project's absolute root (labwork.toml at or above it); anything else is
    taken as a project name."""
    if not project:
        return None
    folder = Path(project).expanduser()
    if folder.is_dir():
        from labwork.errors import NotFound
        from labwork.project.files import find_root
        try:
            return str(find_root(folder))
        except NotFound:
            return str(folder.resolve())
    return project


def list_runs(client: Any, *, project: str | None = None, notebook: str | None = None,
              status: str | None = None, since: str | None = None, until: str | None = None,
              user: str | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    params = {k: v for k, v in {"project": _project_ref(project), "notebook": notebook, "status": status,
                                "since": since, "until": until, "user": user, "limit": limit,
                                "offset": offset}.items()
              if v is not None}
    return client.request("GET", "/api/runs", params=params)


def get_run(client: Any, run: str) -> dict[str, Any]:
    return client.request("GET", f"/api/runs/{quote(run, safe='')}")


def download_run(client: Any, run: str, to: Path | str | None = None) -> dict[str, Any]:
    """Download a run's outputs (newest version of each path) into `to` (default ./run-<id8>),
    keeping their paths: `to/outputs/model.pkl`."""
    from labwork.history.mlflow_export import download_artifact

    info = get_run(client, run)
    dest = Path(to or f"run-{info['id'][:8]}").expanduser().resolve()
    files = []
    for a in info.get("artifacts", []):
        target = (dest / a["path"]).resolve()
        if not target.is_relative_to(dest):
            raise Forbidden(f"artifact path '{a['path']}' would leave {dest}")
        download_artifact(client, info["id"], a["path"], target)
        files.append({"path": a["path"], "file": str(target), "size": a["size"]})
    return {"run": info["id"], "to": str(dest), "files": files}


def export_runs(client: Any, tracking_uri: str, runs: list[str] | None = None, *,
                project: str | None = None, experiment: str | None = None) -> list[dict[str, Any]]:
    from labwork.history.mlflow_export import ApiSource, export_to_mlflow
    return export_to_mlflow(ApiSource(client), tracking_uri, runs, project=_project_ref(project),
                            experiment=experiment)
