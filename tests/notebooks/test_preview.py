"""Read-only previews: sanitized (a notebook's own scripts never run), images embedded, no server."""
from __future__ import annotations

import base64
import re
import struct
import zlib
from pathlib import Path

import nbformat
import pytest

from labwork.errors import ConfigError, Forbidden, NotFound
from labwork.notebooks.preview import list_notebooks, notebook_in_project, render_preview


def tiny_png() -> bytes:
    """A valid 1x1 red PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"\x00\xff\x00\x00"
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def hostile_notebook(folder: Path) -> Path:
    """A notebook with scripts in markdown, HTML and JavaScript outputs, plus two images."""
    (folder / "pic.png").write_bytes(tiny_png())
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(
        "# Title\n\n<script>window.pwned = 'markdown'</script>\n\n"
        "<img src='nothing.png' onerror=\"window.pwned='onerror'\">"))
    nb.cells.append(nbformat.v4.new_markdown_cell(
        "## Pictures\n\n![local picture](pic.png)\n\n[click me](javascript:window.pwned='link')\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |"))
    code = nbformat.v4.new_code_cell("display(stuff)")
    code.outputs = [
        nbformat.v4.new_output("display_data", data={
            "text/html": "<b>bold output</b><script>window.pwned = 'html-output'</script>"}),
        nbformat.v4.new_output("display_data", data={"application/javascript": "window.pwned = 'js-output'"}),
        nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(tiny_png()).decode(),
                                                     "text/plain": "<Figure>"}),
        nbformat.v4.new_output("display_data", data={
            "image/svg+xml": "<svg xmlns='http://www.w3.org/2000/svg' width='4' height='4'>"
                             "<script>window.pwned='svg'</script><rect width='4' height='4'/></svg>"}),
        nbformat.v4.new_output("stream", name="stdout", text="printed text\n"),
    ]
    nb.cells.append(code)
    path = folder / "hostile.ipynb"
    nbformat.write(nb, path)
    return path


def test_preview_neutralises_scripts_and_embeds_images(tmp_path: Path) -> None:
    html = render_preview(hostile_notebook(tmp_path))
    assert "printed text" in html and "bold output" in html
    # every <script> left is the template's own; none carries the notebook's code
    for script in re.findall(r"<script\b[^>]*>(.*?)</script>", html, flags=re.S | re.I):
        assert "pwned" not in script
    assert not re.search(r"<[^>]+\sonerror\s*=", html, flags=re.I)  # no live event handler attribute
    assert "javascript:" not in html.lower()
    assert "pwned" not in html  # script bodies are dropped, not left behind as text
    # markdown still renders as markup (headings, tables), not as escaped text
    assert '<h1 id="Title">' in html and "<table>" in html and "&lt;h2" not in html
    # output image and the markdown's local image are embedded as data URIs, SVG as an <img>
    assert re.search(r'<img alt="local picture" src="data:image/png;base64,', html)
    assert html.count("data:image/png;base64,") >= 3  # the template's own CSS has one too
    assert 'src="data:image/svg+xml;base64,' in html


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium")
def test_preview_runs_nothing_in_a_browser(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from playwright.sync_api import sync_playwright

    out = tmp_path / "preview.html"
    out.write_text(render_preview(hostile_notebook(tmp_path)), encoding="utf-8")

    def look() -> dict:
        # its own thread: Playwright's sync API refuses a thread where an asyncio loop runs, and
        # earlier tests (nbclient, jupyter_client) may leave one in the main thread
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            try:
                page = browser.new_page()
                page.route("**/*", lambda route: route.abort() if not route.request.url.startswith(("file:", "data:"))
                           else route.continue_())  # offline: the template's CDN scripts do not load
                page.goto(out.as_uri())
                page.wait_for_timeout(500)
                return {"pwned": page.evaluate("typeof window.pwned"),
                        "printed": page.locator("text=printed text").count(),
                        "images": page.locator("img[src^='data:image/png']").count(),
                        "title": page.locator("h1#Title").count()}
            finally:
                browser.close()

    with ThreadPoolExecutor(1) as pool:
        seen = pool.submit(look).result(timeout=120)
    assert seen["pwned"] == "undefined"
    assert seen["printed"] == 1
    assert seen["images"] >= 2
    assert seen["title"] == 1


def test_preview_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        render_preview(tmp_path / "missing.ipynb")
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{ not json")
    with pytest.raises(ConfigError) as info:
        render_preview(bad)
    assert str(bad) in str(info.value)
    txt = tmp_path / "notes.txt"
    txt.write_text("hi")
    with pytest.raises(ConfigError, match="not a notebook"):
        render_preview(txt)


def test_paths_must_stay_inside_the_project(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    nbformat.write(nbformat.v4.new_notebook(), root / "a.ipynb")
    outside = tmp_path / "secret.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), outside)
    (root / "link.ipynb").symlink_to(outside)
    assert notebook_in_project(root, "a.ipynb") == (root / "a.ipynb").resolve()
    for escape in ("../secret.ipynb", str(outside), "sub/../../secret.ipynb", "link.ipynb"):
        with pytest.raises(Forbidden):
            notebook_in_project(root, escape)
    with pytest.raises(NotFound):
        notebook_in_project(root, "nope.ipynb")


def test_list_notebooks_skips_hidden_and_checkpoints(tmp_path: Path) -> None:
    for rel in ("a.ipynb", "sub/b.ipynb", ".ipynb_checkpoints/a-checkpoint.ipynb", ".hidden/c.ipynb"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nbformat.v4.new_notebook(), tmp_path / rel)
    assert [n["path"] for n in list_notebooks(tmp_path)] == ["a.ipynb", "sub/b.ipynb"]


def leaky_project(tmp_path: Path) -> tuple[Path, Path, str]:
    """A project whose notebook shows `leak.png` (a symlink to a secret outside), `../secret.png`,
    an absolute path and a picture that really is inside; returns (root, notebook, secret text)."""
    from labwork.project import init_project

    root = init_project(tmp_path / "proj", "leaky").root
    secret = tmp_path / "token"
    secret.write_text("TOPSECRET-0123456789")
    (root / "leak.png").symlink_to(secret)
    (tmp_path / "secret.png").write_text("TOPSECRET-0123456789")
    (root / "sub").mkdir()
    (root / "sub" / "ok.png").write_bytes(tiny_png())
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(
        "![leak](leak.png) ![up](../secret.png) ![abs](%s) <img src='leak.png' alt='html'> "
        "![inside](sub/ok.png)" % secret))
    out = nbformat.v4.new_code_cell("x")
    out.outputs = [nbformat.v4.new_output("display_data", data={"text/html": "<img src='leak.png' alt='out'>"})]
    nb.cells.append(out)
    path = root / "leaky.ipynb"
    nbformat.write(nb, path)
    return root, path, "TOPSECRET-0123456789"


def assert_no_leak(html: str, secret: str) -> None:
    encoded = base64.b64encode(secret.encode()).decode()
    assert secret not in html and encoded[:16] not in html
    assert re.search(r'<img alt="inside" src="data:image/png;base64,', html)  # inside: embedded
    assert re.search(r'<img alt="leak"\s*/?>', html)  # outside: left out, alt text kept


def test_preview_images_stay_inside_the_project(tmp_path: Path) -> None:
    root, path, secret = leaky_project(tmp_path)
    assert_no_leak(render_preview(path), secret)  # the project found from the notebook
    assert_no_leak(render_preview(path, root=root), secret)


def test_preview_loads_nothing_and_carries_a_csp(tmp_path: Path) -> None:
    html = render_preview(hostile_notebook(tmp_path))
    meta = re.search(r'<meta content="([^"]*)" http-equiv="Content-Security-Policy"', html)
    assert meta and meta.group(1).startswith("default-src 'none'; img-src data:;")
    assert not re.search(r"<script\b[^>]*\bsrc=", html)  # no require.js, no MathJax, no mermaid
    assert "cdnjs" not in html and "mathjax" not in html.lower().replace("mathjax_", "")


def test_preview_leaves_out_huge_outputs_with_a_note(tmp_path: Path) -> None:
    from labwork.notebooks import preview

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print('x' * 3e6)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * (preview.MAX_OUTPUT_BYTES + 10)),
                    nbformat.v4.new_output("stream", name="stdout", text="small and kept\n")]
    nb.cells.append(cell)
    path = tmp_path / "big.ipynb"
    nbformat.write(nb, path)
    html = render_preview(path)
    assert "MB is left out" in html and "small and kept" in html
    assert len(html) < preview.MAX_OUTPUT_BYTES


def test_missing_attachment_is_a_clear_error(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("![a](attachment:nope.png)"))
    path = tmp_path / "att.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(ConfigError, match="cannot render"):
        render_preview(path)


def test_preview_shows_a_bounded_share_of_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labwork.notebooks import preview

    monkeypatch.setattr(preview, "MAX_TOTAL_OUTPUT_BYTES", 50_000)
    nb = nbformat.v4.new_notebook()
    for i in range(10):
        cell = nbformat.v4.new_code_cell(f"out({i})")
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"chunk-{i} " + "y" * 20_000)]
        nb.cells.append(cell)
    path = tmp_path / "many.ipynb"
    nbformat.write(nb, path)
    html = render_preview(path)
    assert "chunk-0" in html and "chunk-1" in html and "chunk-9" not in html
    assert html.count("the preview shows the first") == 8
