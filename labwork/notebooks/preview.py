"""Read-only HTML previews of notebooks, with no Jupyter server.

nbconvert's `HTMLExporter` with the JupyterLab template and `sanitize_html=True`: HTML in markdown
cells and outputs is cleaned (a notebook's own `<script>`, event handlers, `javascript:` links and
JavaScript outputs never run), output images are data URIs and local images are embedded from
inside the project only (resolved, symlinks followed). The page loads nothing from anywhere.

nbconvert's own cleaner keeps only bleach's minimal tag list, which turns every heading, paragraph,
image and table of a markdown cell into escaped text. `clean_html` below replaces it with the
allow-list a notebook needs (still no script, style, iframe, form, object or event attribute); SVG
outputs become `<img>` data URIs, in which SVG scripts cannot run.
"""
from __future__ import annotations

import base64
import os
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


IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".svg": "image/svg+xml", ".webp": "image/webp", ".bmp": "image/bmp"}
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_NOTEBOOK_BYTES = 200 * 1024 * 1024
MAX_OUTPUT_BYTES = 2 * 1024 * 1024  # one output larger than this is left out with a note
MAX_TOTAL_OUTPUT_BYTES = 10 * 1024 * 1024  # outputs past this much are left out (bounds a render's cost)
_IMG_SRC = re.compile(r'(<img\b[^>]*?\s)src="([^"]*)"', re.IGNORECASE)
_URL_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")

# A preview loads nothing: no scripts (nbconvert's require.js, MathJax and mermaid from CDNs are
# left out of the template), only inline styles and data: images and fonts.
PREVIEW_CSP = ("sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; img-src data:; "
               "style-src 'unsafe-inline' data:; font-src data:; object-src 'none'; base-uri 'none'; "
               "form-action 'none'; frame-ancestors 'self'")
# The same policy in the page itself, for HTML written to a file (`notebook preview -o`); a meta tag
# cannot carry sandbox or frame-ancestors.
FILE_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline' data:; font-src data:; "
            "object-src 'none'; base-uri 'none'; form-action 'none'")
_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head -%}
<meta http-equiv="Content-Security-Policy" content="{{ resources.labwork_csp }}">
{{ super() }}
{%- endblock html_head -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


class ImageFiles:
    """Local images of a notebook as data URIs: a path is resolved (symlinks followed) from the
    notebook's folder and embedded only when it stays under the project root; otherwise left out."""

    def __init__(self, root: Path, folder: Path) -> None:
        self.root, self.folder = root.resolve(), folder

    def data_uri(self, src: str) -> str | None:
        from urllib.parse import unquote, urlsplit

        if not src or _URL_SCHEME.match(src) or src.startswith("//"):
            return None
        rel = unquote(urlsplit(src).path)
        if not rel or "\x00" in rel:
            return None
        try:
            target = (self.folder / rel).resolve()
            if self.root not in target.parents or not target.is_file():
                return None
            mime = IMAGE_TYPES.get(target.suffix.lower())
            if mime is None or target.stat().st_size > MAX_IMAGE_BYTES:
                return None
            return f"data:{mime};base64,{base64.b64encode(target.read_bytes()).decode()}"
        except (OSError, ValueError):
            return None

    def embed(self, html: str) -> str:
        import html as htmllib

        def one(m: re.Match) -> str:
            src = htmllib.unescape(m.group(2))
            if src.lower().startswith("data:image/"):
                return m.group(0)
            uri = self.data_uri(src)
            return f'{m.group(1)}src="{uri}"' if uri else m.group(1).rstrip() + " "

        return _IMG_SRC.sub(one, html)


def clean_html(element: str | bytes, images: ImageFiles | None = None) -> str:
    """Sanitize HTML from a notebook (markdown, outputs) for the preview; local images are embedded
    through `images` (inside the project only) and left out without it."""
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

    cleaned = bleach.clean(text, tags=ALLOWED_TAGS, attributes=attribute_ok, protocols=ALLOWED_PROTOCOLS,
                           strip=True, strip_comments=True, css_sanitizer=CSSSanitizer())
    return (images or _NO_IMAGES).embed(cleaned)


class _NoImages(ImageFiles):
    def __init__(self) -> None:  # noqa: D107 - embeds nothing
        pass

    def data_uri(self, src: str) -> str | None:
        return None


_NO_IMAGES = _NoImages()


def _exporter(images: ImageFiles):
    from functools import partial

    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    # embed_images=False: nbconvert would read any path next to the notebook, symlinks followed;
    # ImageFiles embeds them instead, inside the project only.
    return HTMLExporter(template_name="lab", template_file="labwork_preview.html.j2",
                        extra_loaders=[DictLoader({"labwork_preview.html.j2": _TEMPLATE})],
                        sanitize_html=True, embed_images=False,
                        filters={"clean_html": partial(clean_html, images=images)})


def _bound_outputs(nb) -> int:  # noqa: ANN001 - a NotebookNode
    """Replace each output over MAX_OUTPUT_BYTES, and every output once MAX_TOTAL_OUTPUT_BYTES have
    been shown, by a note: rendering costs about a CPU-second per MB. Returns how many were left out."""
    import nbformat

    dropped, total = 0, 0
    for cell in nb.cells:
        outputs = cell.get("outputs") or []
        for i, out in enumerate(outputs):
            size = sum(len(v) if isinstance(v, str) else sum(map(len, v)) if isinstance(v, list) else 0
                       for v in [out.get("text", "")] + list((out.get("data") or {}).values()))
            if size > MAX_OUTPUT_BYTES:
                why = f"the preview shows outputs up to {MAX_OUTPUT_BYTES / 1e6:.0f} MB each"
            elif total + size > MAX_TOTAL_OUTPUT_BYTES:
                why = f"the preview shows the first {MAX_TOTAL_OUTPUT_BYTES / 1e6:.0f} MB of outputs"
            else:
                total += size
                continue
            dropped += 1
            outputs[i] = nbformat.v4.new_output("stream", name="stderr", text=(
                f"[labwork preview: an output of {size / 1e6:.1f} MB is left out; {why}. "
                "Open the notebook in Jupyter to see it.]\n"))
    return dropped


def project_root_of(nb_path: Path) -> Path:
    """The project folder holding `nb_path`, or its own folder outside any project."""
    from labwork.errors import LabworkError
    from labwork.project.files import find_root

    try:
        return find_root(nb_path.parent)
    except LabworkError:
        return nb_path.parent.resolve()


def render_preview(path: str | Path, root: str | Path | None = None) -> str:
    """The notebook at `path` as a self-contained, sanitized HTML page that loads nothing.

    Local images are embedded only from inside `root` (default: the notebook's project folder);
    outputs over MAX_OUTPUT_BYTES are replaced by a note; notebooks over MAX_NOTEBOOK_BYTES refused.
    """
    import nbformat

    nb_path = Path(path).expanduser()
    if not nb_path.is_file():
        raise NotFound("no such notebook", where=str(nb_path))
    if nb_path.suffix != ".ipynb":
        raise ConfigError("not a notebook (expected a .ipynb file)", where=str(nb_path))
    size = nb_path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        raise ConfigError(f"too large to preview ({size / 1e6:.0f} MB; the limit is "
                          f"{MAX_NOTEBOOK_BYTES / 1e6:.0f} MB)", where=str(nb_path),
                          hint="open it in Jupyter, or clear its outputs")
    try:
        nb = nbformat.read(nb_path, as_version=4)
    except Exception as exc:  # nbformat raises several kinds for bad JSON / schema
        raise ConfigError(f"not a readable notebook: {exc}", where=str(nb_path)) from exc
    _bound_outputs(nb)
    images = ImageFiles(Path(root) if root is not None else project_root_of(nb_path), nb_path.parent)
    resources = {"metadata": {"name": nb_path.stem, "path": str(nb_path.parent)}, "labwork_csp": FILE_CSP}
    try:
        html, _ = _exporter(images).from_notebook_node(nb, resources=resources)
    except Exception as exc:  # a missing attachment, a malformed output: nbconvert's own errors
        raise ConfigError(f"cannot render this notebook: {type(exc).__name__}: {exc}",
                          where=str(nb_path)) from exc
    return html


def notebook_in_project(root: str | Path, notebook: str | Path, *, must_exist: bool = True) -> Path:
    """`notebook` (relative to `root`, or absolute) resolved; refused when it leaves the project."""
    from labwork.inputs import check_path_text

    check_path_text(str(notebook), str(notebook))
    root = Path(root).resolve()
    given = Path(notebook).expanduser()
    try:
        target = (given if given.is_absolute() else root / given).resolve()
        exists = target.is_file()
    except (OSError, RuntimeError) as exc:  # a symlink loop, a name the file system refuses
        raise NotFound("no such notebook in the project", where=str(notebook)) from exc
    if target != root and root not in target.parents:
        raise Forbidden("the path leaves the project folder", where=str(notebook),
                        hint=f"give a path inside {root}")
    if must_exist and not exists:
        raise NotFound("no such notebook in the project", where=str(notebook))
    return target


def list_notebooks(root: str | Path) -> list[dict]:
    """The project's `*.ipynb` files (skipping hidden folders and checkpoints), by path. A file name
    that is not UTF-8 is listed with U+FFFD in its place and a `problem` saying so."""
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
        path, name = rel.as_posix(), p.name
        item = {"path": path, "name": name, "size": st.st_size, "modified": _iso(st.st_mtime)}
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            item["path"] = os.fsencode(path).decode("utf-8", "replace")
            item["name"] = os.fsencode(name).decode("utf-8", "replace")
            item["problem"] = "the file name is not UTF-8: rename it to preview or open it here"
        out.append(item)
    return out


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat()
