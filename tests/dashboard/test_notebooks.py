"""Project › Notebooks: the list, the read-only preview (no server) with outputs and an image."""
from __future__ import annotations

import base64
import struct
import zlib

import nbformat
from playwright.sync_api import expect

from tests.support.browser import login, shot


def png(width: int = 40, height: int = 20) -> bytes:
    """A small red-and-blue PNG, written by hand."""
    rows = b"".join(b"\x00" + b"".join(b"\xd0\x20\x20" if x < width // 2 else b"\x20\x40\xd0"
                                       for x in range(width)) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def write_notebook(path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Iris exploration\nSome *markdown*."),
        nbformat.v4.new_code_cell("print('hello from the preview')", execution_count=1, outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="hello from the preview\n")]),
        nbformat.v4.new_code_cell("plot()", execution_count=2, outputs=[
            nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(png()).decode(),
                                                         "text/plain": "<Figure>"})]),
        nbformat.v4.new_code_cell("<script>", execution_count=3, outputs=[
            nbformat.v4.new_output("display_data", data={"text/html": "<b id='bold-out'>bold</b><script>window.parent.hacked=1</script>"})]),
    ]
    nbformat.write(nb, path)


def test_preview_shows_outputs_and_image(cp, page, project):
    from pathlib import Path
    root = Path(project["path"])
    write_notebook(root / "explore.ipynb")
    (root / "sub").mkdir()
    write_notebook(root / "sub" / "other.ipynb")
    login(page, cp, f"/projects/{project['id']}/notebooks")
    expect(page.locator("#notebooks")).to_contain_text("explore.ipynb")
    expect(page.locator("#notebooks")).to_contain_text("sub/other.ipynb")
    page.click("a[data-preview='explore.ipynb']")  # one click
    frame = page.frame_locator("#preview")
    expect(frame.locator("body")).to_contain_text("hello from the preview", timeout=60_000)
    expect(frame.locator("h1")).to_contain_text("Iris exploration")
    img = frame.locator("img").first
    expect(img).to_be_visible()
    assert img.get_attribute("src").startswith("data:image/png;base64,")
    assert img.evaluate("i => i.naturalWidth") == 40
    assert page.evaluate("() => window.hacked") is None  # the notebook's script did not run
    expect(page.locator("#open-in-jupyter")).to_be_visible()
    shot(page, "notebook-preview")


def test_preview_refuses_paths_outside_the_project(cp, page, project):
    login(page, cp, f"/projects/{project['id']}/notebooks")
    r = page.request.get(f"{cp.url}/projects/{project['id']}/notebooks/preview?path=../../etc/passwd")
    assert r.status == 403 and "leaves the project" in r.text()
    r = page.request.get(f"{cp.url}/projects/{project['id']}/notebooks/preview?path=missing.ipynb")
    assert r.status == 404
    page.goto(f"{cp.url}/projects/{project['id']}/notebooks?path=missing.ipynb")
    expect(page.locator("#page-error")).to_contain_text("No notebook")
