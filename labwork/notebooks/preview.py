"""Read-only HTML previews of notebooks, with no Jupyter server.

nbconvert's `HTMLExporter` with the JupyterLab template and `sanitize_html=True`: HTML in markdown
cells and outputs is cleaned (a notebook's own `<script>`, event handlers and JavaScript outputs
never run), output images are data URIs and local images in markdown are embedded.
"""
from __future__ import annotations

from pathlib import Path

from labwork.errors import ConfigError, Forbidden, NotFound


def _exporter():
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", sanitize_html=True, embed_images=True)
    exporter.exclude_input_prompt = False
    return exporter


def render_preview(path: str | Path) -> str:
    """The notebook at `path` as a self-contained, sanitized HTML page."""
    import nbformat

    nb_path = Path(path).expanduser()
    if not nb_path.is_file():
        raise NotFound("no such notebook", where=str(nb_path))
    if nb_path.suffix != ".ipynb":
        raise ConfigError("not a notebook (expected a .ipynb file)", where=str(nb_path))
    try:
        nb = nbformat.read(nb_path, as_version=4)
    except Exception as exc:  # nbformat raises several kinds for bad JSON / schema
        raise ConfigError(f"not a readable notebook: {exc}", where=str(nb_path)) from exc
    resources = {"metadata": {"name": nb_path.stem, "path": str(nb_path.parent)}}
    html, _ = _exporter().from_notebook_node(nb, resources=resources)
    return html


def notebook_in_project(root: str | Path, notebook: str | Path, *, must_exist: bool = True) -> Path:
    """`notebook` (relative to `root`, or absolute) resolved; refused when it leaves the project."""
    root = Path(root).resolve()
    given = Path(notebook).expanduser()
    target = (given if given.is_absolute() else root / given).resolve()
    if target != root and root not in target.parents:
        raise Forbidden("the path leaves the project folder", where=str(notebook),
                        hint=f"give a path inside {root}")
    if must_exist and not target.is_file():
        raise NotFound("no such notebook in the project", where=str(notebook))
    return target


def list_notebooks(root: str | Path) -> list[dict]:
    """The project's `*.ipynb` files (skipping hidden folders and checkpoints), by path."""
    root = Path(root).resolve()
    out = []
    for p in sorted(root.rglob("*.ipynb")):
        rel = p.relative_to(root)
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue  # .ipynb_checkpoints, .labwork, .git, hidden files
        try:
            st = p.stat()
        except OSError:
            continue
        out.append({"path": rel.as_posix(), "name": p.name, "size": st.st_size,
                    "modified": _iso(st.st_mtime)})
    return out


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat()
