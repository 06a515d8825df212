"""Preview through every surface (API, CLI) keeps images inside the project and loads nothing; the
cache renders one version once, however many readers ask at the same time."""
from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

from labwork.notebooks.preview_cache import PreviewCache
from tests.support import ControlPlane
from tests.notebooks.test_preview import assert_no_leak, leaky_project


def test_api_preview_keeps_symlinked_secrets_out(control_plane: ControlPlane, tmp_path: Path) -> None:
    root, path, secret = leaky_project(tmp_path)
    with control_plane.client() as http:
        pid = http.post("/api/projects", json={"path": str(root)}).json()["id"]
        r = http.get(f"/api/projects/{pid}/notebooks/preview", params={"path": "leaky.ipynb"})
        assert r.status_code == 200
        assert_no_leak(r.text, secret)
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "img-src data:" in csp and "sandbox" in csp
        # the symlink itself is no notebook path either
        (root / "link.ipynb").symlink_to(tmp_path / "token")
        r = http.get(f"/api/projects/{pid}/notebooks/preview", params={"path": "link.ipynb"})
        assert r.status_code == 403 and r.json()["error"] == "Forbidden"


def test_cli_preview_file_keeps_secrets_out_and_has_a_csp(tmp_path: Path) -> None:
    import os

    root, path, secret = leaky_project(tmp_path)
    out = tmp_path / "out.html"
    run = subprocess.run([sys.executable, "-m", "labwork", "notebook", "preview", str(path), "-o", str(out)],
                         capture_output=True, text=True, timeout=120, cwd=root,
                         env=dict(os.environ, LABWORK_HOME=str(tmp_path / "home"), BROWSER="true"))
    assert run.returncode == 0, run.stderr
    html = out.read_text()
    assert_no_leak(html, secret)
    assert re.search(r'<meta content="default-src \'none\'[^"]*" http-equiv="Content-Security-Policy"', html)
    assert not re.search(r"<script\b[^>]*\bsrc=", html)


def test_cache_renders_each_version_once(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# one"))
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    cache = PreviewCache()
    with ThreadPoolExecutor(4) as pool:
        pages = list(pool.map(lambda _: cache.get(path), range(4)))
    assert cache.renders == 1 and len(set(pages)) == 1 and 'id="one"' in pages[0]
    assert cache.get(path) == pages[0] and cache.renders == 1
    nb.cells.append(nbformat.v4.new_markdown_cell("# two"))
    nbformat.write(nb, path)
    assert 'id="two"' in cache.get(path) and cache.renders == 2  # a changed file is rendered again


def test_cache_passes_errors_to_every_waiter(tmp_path: Path) -> None:
    import pytest

    from labwork.errors import ConfigError
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{ nope")
    cache = PreviewCache()
    with pytest.raises(ConfigError):
        cache.get(bad)
