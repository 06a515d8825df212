"""The dashboard's forms and previews with hostile names and paths (issue 8 items 4 and 5): a
detach of `../../../x/important` or `/abs/path` is refused with its reason and deletes nothing; a
preview never embeds a file outside the project, whatever symlink points at it."""
from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from tests.support.browser import login
from tests.notebooks.test_preview import assert_no_leak, leaky_project


def test_detach_form_refuses_paths(cp, page, project, tmp_path: Path):
    pid = project["id"]
    root = Path(project["path"])
    outside = root.parent / "x" / "important.toml"
    outside.parent.mkdir(parents=True)
    outside.write_text('type = "local"\n')
    absolute = tmp_path / "abs.toml"
    absolute.write_text('type = "local"\n')
    login(page, cp, f"/projects/{pid}/compute")
    expect(page.locator("#targets tr[data-target='local']")).to_be_visible()
    csrf = page.locator("#attach-form input[name=csrf_token]").input_value()
    for name in ("../../x/important", "../../../x/important", str(absolute.with_suffix(""))):
        r = page.request.post(f"{cp.url}/projects/{pid}/compute/detach", form={"csrf_token": csrf, "name": name},
                              headers={"Origin": cp.url})
        text = r.text().replace("&#39;", "'")
        assert r.status == 400 and "Not detached" in text and "must be 1-64 letters" in text, text[:500]
    assert outside.exists() and absolute.exists()
    assert (root / ".labwork" / "compute" / "local.toml").exists()


def test_preview_page_keeps_symlinked_secrets_out(cp, page, tmp_path: Path):
    root, _path, secret = leaky_project(tmp_path)
    with cp.client() as http:
        pid = http.post("/api/projects", json={"path": str(root)}).json()["id"]
    login(page, cp, f"/projects/{pid}/notebooks")
    r = page.request.get(f"{cp.url}/projects/{pid}/notebooks/preview?path=leaky.ipynb")
    assert r.status == 200
    assert_no_leak(r.text(), secret)
    assert "default-src 'none'" in r.headers["content-security-policy"]
