"""Read-only HTML previews of notebooks, with no Jupyter server.

nbconvert's `HTMLExporter` with the JupyterLab template and `sanitize_html=True`: HTML in markdown
cells and outputs is cleaned (a notebook's own `<script>`, event handlers, `javascript:` links and
JavaScript outputs never run), output images are data URIs and local images in markdown are
embedded.

nbconvert's own cleaner keeps only bleach's minimal tag list, which turns every heading, paragraph,
image and table of a markdown cell into escaped text. `clean_html` below replaces it with the
allow-list a notebook needs (still no script, style, iframe, form, object or event attribute); SVG
outputs become `<img>` data URIs, in which SVG scripts cannot run.
"""
from __future__ import annotations

import base64
import re
from pathlib import Path

from labwork.errors import ConfigError, Forbidden, NotFound

ALLOWED_TAGS = frozenset({
    "a", "abbr", "acronym", "b", "blockquote", "br", "caption", "cite", "code", "col", "colgroup",
    "dd", "del", "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3",
    "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s",
    "samp", "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th",
    "thead", "tr", "u", "ul", "var",
})
_GLOBAL_ATTRS = ["class", "id", "title", "lang", "dir", "align", "style"]
ALLOWED_ATTRIBUTES = {
    "*": _GLOBAL_ATTRS,
    "a": [*_GLOBAL_ATTRS, "href", "name"],
    "img": [*_GLOBAL_ATTRS, "src", "alt", "width", "height"],
    "td": [*_GLOBAL_ATTRS, "colspan", "rowspan", "valign"],
    "th": [*_GLOBAL_ATTRS, "colspan", "rowspan", "valign", "scope"],
    "table": [*_GLOBAL_ATTRS, "border", "cellpadding", "cellspacing"],
    "col": [*_GLOBAL_ATTRS, "span", "width"], "colgroup": [*_GLOBAL_ATTRS, "span"],
    "ol": [*_GLOBAL_ATTRS, "start", "type"], "details": [*_GLOBAL_ATTRS, "open"],
}
ALLOWED_PROTOCOLS = ["http", "https", "mailto", "data"]
# Elements whose content is dropped with them (not left behind as text).
_DROP_WITH_CONTENT = re.compile(r"<(script|style|iframe|object|embed|template|noscript)\b.*?</\1\s*>",
                                re.IGNORECASE | re.DOTALL)


def clean_html(element: str | bytes) -> str:
    """Sanitize HTML from a notebook (markdown, outputs) for the preview."""
    import bleach
    from bleach.css_sanitizer import CSSSanitizer

    text = element.decode() if isinstance(element, bytes) else str(element)
    stripped = text.lstrip()
    if stripped.startswith(("<svg", "<?xml")) and "<svg" in stripped[:500]:
        data = base64.b64encode(text.encode()).decode()
        return f'<img src="data:image/svg+xml;base64,{data}" alt="SVG output">'
    text = _DROP_WITH_CONTENT.sub("", text)

    def attribute_ok(tag: str, name: str, value: str) -> bool:
        allowed = ALLOWED_ATTRIBUTES.get(tag, ALLOWED_ATTRIBUTES["*"])
        if name not in allowed:
            return False
        if name in ("href", "src") and value.strip().lower().startswith("data:"):
            return tag == "img" and value.strip().lower().startswith("data:image/")
        return True

    return bleach.clean(text, tags=ALLOWED_TAGS, attributes=attribute_ok, protocols=ALLOWED_PROTOCOLS,
                        strip=True, strip_comments=True, css_sanitizer=CSSSanitizer())


def _exporter():
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="lab", sanitize_html=True, embed_images=True,
                        filters={"clean_html": clean_html})


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
