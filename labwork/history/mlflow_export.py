"""`labwork run export --mlflow URI [RUN...]`: run history written into an MLflow tracking store.

One MLflow run per notebook run (tags `mlflow.source.type=NOTEBOOK`, `mlflow.source.name`), in an
experiment named after the project; a nested run per cell entry (the code as the artifact
`cell.py`, status, duration); logged numbers and lists as metrics with steps (string values as
text artifacts under `values/`); uploaded outputs as artifacts under `outputs/`.

A notebook run is exported once: its MLflow run carries the tag `labwork.run_id`, and a run that
is already in the experiment is skipped.

MLflow is an optional extra (`pip install 'labwork[mlflow]'`); it is imported only here.
"""
from __future__ import annotations

import re
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from labwork.errors import MissingExtra


class RunSource(Protocol):
    def run_ids(self, project: str | None = None) -> list[str]: ...
    def get_run(self, ref: str) -> dict[str, Any]: ...
    def series(self, ref: str, name: str) -> dict[str, Any]: ...
    def fetch_artifact(self, run_id: str, path: str, dest: Path) -> None: ...


class StoreSource:
    """Runs read straight from a store (tests, the control plane itself)."""

    def __init__(self, store: Any, artifacts_dir: Path) -> None:
        self.store = store
        self.artifacts_dir = Path(artifacts_dir)

    def run_ids(self, project: str | None = None) -> list[str]:
        from labwork.history.queries import list_runs
        out: list[str] = []
        offset = 0
        while True:
            page = list_runs(self.store, project=project, limit=1000, offset=offset)
            out += [r["id"] for r in page["runs"]]
            offset += len(page["runs"])
            if not page["runs"] or offset >= page["total"]:
                return out

    def get_run(self, ref: str) -> dict[str, Any]:
        from labwork.history.queries import get_run
        return get_run(self.store, ref)

    def series(self, ref: str, name: str) -> dict[str, Any]:
        from labwork.history.queries import value_series
        return value_series(self.store, ref, name)

    def fetch_artifact(self, run_id: str, path: str, dest: Path) -> None:
        import shutil

        from labwork.history.artifacts import artifact_file
        file, _ = artifact_file(self.store, self.artifacts_dir, run_id, path)
        shutil.copyfile(file, dest)


class ApiSource:
    """Runs read through the control plane's API (the CLI)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def run_ids(self, project: str | None = None) -> list[str]:
        out: list[str] = []
        offset = 0
        while True:
            params: dict[str, Any] = {"limit": 1000, "offset": offset}
            if project:
                params["project"] = project
            page = self.client.request("GET", "/api/runs", params=params)
            out += [r["id"] for r in page["runs"]]
            offset += len(page["runs"])
            if not page["runs"] or offset >= page["total"]:
                return out

    def get_run(self, ref: str) -> dict[str, Any]:
        from urllib.parse import quote
        return self.client.request("GET", f"/api/runs/{quote(ref, safe='')}")

    def series(self, ref: str, name: str) -> dict[str, Any]:
        from urllib.parse import quote
        return self.client.request("GET", f"/api/runs/{quote(ref, safe='')}/values/{quote(name, safe='')}")

    def fetch_artifact(self, run_id: str, path: str, dest: Path) -> None:
        download_artifact(self.client, run_id, path, dest)


def download_artifact(client: Any, run_id: str, path: str, dest: Path) -> None:
    from urllib.parse import quote

    from labwork.errors import LabworkError
    with client.stream("GET", f"/api/runs/{quote(run_id, safe='')}/artifacts/{quote(path)}") as r:
        if r.status_code >= 400:
            r.read()
            try:
                body = r.json()
            except ValueError:
                body = {"msg": r.text}
            exc = LabworkError.from_dict(body, r.status_code)
            exc.where = exc.where or f"{run_id}:{path}"
            raise exc
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "wb") as fh:
            for chunk in r.iter_bytes():
                fh.write(chunk)


_KEY_BAD = re.compile(r"[^A-Za-z0-9_\-. /]")
_STATUS = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED", "running": "RUNNING"}
_ENTRY_STATUS = {"ok": "FINISHED", "error": "FAILED", "interrupted": "KILLED"}


def _key(name: str) -> str:
    return _KEY_BAD.sub("_", name)[:250] or "_"


def _ms(iso: str | None) -> int | None:
    if not iso:
        return None
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def _artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """For a SQLite tracking store, keep artifacts beside the database (`<db folder>/mlartifacts/
    <experiment>`) instead of MLflow's default `./mlartifacts` under whatever folder we run in."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///"):]).expanduser()
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", experiment) or "labwork"
        return (db.resolve().parent / "mlartifacts" / safe).as_uri()
    return None


def _import_mlflow() -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise MissingExtra("mlflow", "exporting run history to MLflow") from exc
    return MlflowClient


def export_to_mlflow(source: RunSource, tracking_uri: str, runs: list[str] | None = None, *,
                     project: str | None = None, experiment: str | None = None) -> list[dict[str, Any]]:
    """Export runs (ids or prefixes; all runs, or a project's, when none are given). Returns one
    result per run: `{"run", "mlflow_run_id", "experiment_id", "skipped", "entries", "metrics",
    "artifacts"}`."""
    MlflowClient = _import_mlflow()
    from mlflow.entities import Metric

    client = MlflowClient(tracking_uri=tracking_uri)
    refs = list(runs) if runs else source.run_ids(project)
    results = []
    experiments: dict[str, str] = {}
    for ref in refs:
        run = source.get_run(ref)
        exp_name = experiment or run.get("project") or "labwork"
        if exp_name not in experiments:
            exp = client.get_experiment_by_name(exp_name)
            experiments[exp_name] = exp.experiment_id if exp else \
                client.create_experiment(exp_name, artifact_location=_artifact_location(tracking_uri, exp_name))
        exp_id = experiments[exp_name]
        found = client.search_runs([exp_id], filter_string=f"tags.`labwork.run_id` = '{run['id']}'",
                                   max_results=1)
        if found:
            results.append({"run": run["id"], "mlflow_run_id": found[0].info.run_id,
                            "experiment_id": exp_id, "skipped": True, "entries": 0, "metrics": 0,
                            "artifacts": 0})
            continue
        results.append(_export_one(client, Metric, source, run, exp_id))
    return results


def _export_one(client: Any, Metric: Any, source: RunSource, run: dict[str, Any], exp_id: str) -> dict[str, Any]:
    notebook = run.get("notebook") or run.get("kernel_id") or run["id"]
    tags = {"mlflow.source.type": "NOTEBOOK", "mlflow.source.name": notebook,
            "labwork.run_id": run["id"], "labwork.source": run.get("source") or "",
            "labwork.status": run.get("status") or ""}
    for key in ("project", "project_dir", "runconfig", "kernel_id", "host"):
        if run.get(key):
            tags[f"labwork.{key}"] = str(run[key])
    if run.get("user"):  # who ran it, as MLflow's own user tag
        tags["mlflow.user"] = str(run["user"])
    start = _ms(run.get("started_at"))
    parent = client.create_run(exp_id, start_time=start, tags=tags,
                               run_name=Path(str(notebook)).name or run["id"][:8])
    pid = parent.info.run_id

    # values: numbers (and lists of them) as metrics with steps; strings as text artifacts
    metrics = 0
    by_entry: dict[str, list[Any]] = {}
    for item in run.get("values", []):
        series = source.series(run["id"], item["name"])
        numeric = []
        texts = []
        for p in series["points"]:
            ts = _ms(p.get("logged_at")) or start or 0
            if isinstance(p["value"], (int, float)) and not isinstance(p["value"], bool):
                m = Metric(key=_key(item["name"]), value=float(p["value"]), timestamp=ts, step=p["step"])
                numeric.append(m)
                if p.get("entry_id"):
                    by_entry.setdefault(p["entry_id"], []).append(m)
            else:
                texts.append(str(p["value"]))
        for i in range(0, len(numeric), 1000):
            client.log_batch(pid, metrics=numeric[i:i + 1000])
        metrics += len(numeric)
        if texts:
            client.log_text(pid, "\n".join(texts) + "\n", f"values/{_key(item['name'])}.txt")

    # entries: one nested run per cell or statement
    for e in run.get("entries", []):
        count = f" [{e['execution_count']}]" if e.get("execution_count") is not None else ""
        etags = {"mlflow.parentRunId": pid, "mlflow.source.type": "NOTEBOOK",
                 "mlflow.source.name": notebook, "labwork.entry_id": e["id"],
                 "labwork.status": e["status"], "labwork.kind": e.get("kind") or "cell"}
        if e.get("error_name"):
            etags["labwork.error_name"] = str(e["error_name"])
            etags["labwork.error_value"] = str(e.get("error_value") or "")[:5000]
        child = client.create_run(exp_id, start_time=_ms(e.get("started_at")), tags=etags,
                                  run_name=f"{e.get('kind') or 'cell'} {e['seq']}{count}")
        cid = child.info.run_id
        client.log_text(cid, e.get("code") or "", "cell.py")
        if e.get("traceback"):
            client.log_text(cid, e["traceback"], "traceback.txt")
        batch = list(by_entry.get(e["id"], []))
        if e.get("duration_ms") is not None:
            batch.append(Metric(key="duration_ms", value=float(e["duration_ms"]),
                                timestamp=_ms(e.get("ended_at")) or _ms(e.get("started_at")) or 0, step=0))
        for i in range(0, len(batch), 1000):
            client.log_batch(cid, metrics=batch[i:i + 1000])
        client.set_terminated(cid, status=_ENTRY_STATUS.get(e["status"], "FINISHED"),
                              end_time=_ms(e.get("ended_at")))

    # outputs
    artifacts = 0
    with tempfile.TemporaryDirectory(prefix="labwork-export-") as tmp:
        for a in run.get("artifacts", []):
            rel = Path(a["path"])
            local = Path(tmp) / a["id"] / rel.name
            local.parent.mkdir(parents=True, exist_ok=True)
            source.fetch_artifact(run["id"], a["path"], local)
            client.log_artifact(pid, str(local), artifact_path=rel.parent.as_posix())
            artifacts += 1

    status = _STATUS.get(run.get("status") or "", "FINISHED")
    if status != "RUNNING":
        client.set_terminated(pid, status=status, end_time=_ms(run.get("ended_at")))
    return {"run": run["id"], "mlflow_run_id": pid, "experiment_id": exp_id, "skipped": False,
            "entries": len(run.get("entries", [])), "metrics": metrics, "artifacts": artifacts}
