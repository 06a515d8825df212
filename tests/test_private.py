"""`make_tree_private`: an older tree is tightened whole once; a tree it has marked is not walked
again at every start, only its top level is checked."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from labwork.private import TREE_MARK, TREE_VERSION, make_tree_private


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _old_tree(home: Path) -> dict[str, Path]:
    """A LABWORK_HOME as an installation from before the private modes left it (umask 022)."""
    deep = home / "envs" / "py" / "bin"
    deep.mkdir(parents=True)
    paths = {"home": home, "token": home / "token", "envs": home / "envs", "deep": deep,
             "python": deep / "python", "log": home / "logs" / "old.log"}
    paths["log"].parent.mkdir()
    for name in ("token", "python", "log"):
        paths[name].write_text("x")
    for path in paths.values():
        os.chmod(path, 0o755 if path.is_dir() or path.name == "python" else 0o644)
    outside = home.parent / "outside.txt"
    outside.write_text("not labwork's")
    os.chmod(outside, 0o644)
    os.symlink(outside, home / "link")
    return paths


def test_a_tree_from_before_is_tightened_whole_and_marked(tmp_path: Path) -> None:
    paths = _old_tree(tmp_path / "home")
    assert make_tree_private(paths["home"]) is True
    for name, path in paths.items():
        assert _mode(path) & 0o077 == 0, (name, oct(_mode(path)))
    assert _mode(paths["python"]) == 0o700 and _mode(paths["token"]) == 0o600  # the owner's bits stay
    assert _mode(paths["home"].parent / "outside.txt") == 0o644  # a symlink's target is not touched
    mark = paths["home"] / TREE_MARK
    assert mark.read_text().strip() == TREE_VERSION and _mode(mark) == 0o600


def test_a_marked_tree_is_not_walked_again_but_its_top_level_is_checked(tmp_path: Path) -> None:
    paths = _old_tree(tmp_path / "home")
    make_tree_private(paths["home"])
    os.chmod(paths["python"], 0o755)  # deep: labwork never makes such a file, so it is not looked for
    os.chmod(paths["token"], 0o644)  # top level: checked at every start
    os.chmod(paths["envs"], 0o755)
    assert make_tree_private(paths["home"]) is False
    assert _mode(paths["token"]) == 0o600 and _mode(paths["envs"]) == 0o700
    assert _mode(paths["python"]) == 0o755


def test_a_mark_of_another_version_walks_the_tree_again(tmp_path: Path) -> None:
    paths = _old_tree(tmp_path / "home")
    (paths["home"] / TREE_MARK).write_text("0\n")
    assert make_tree_private(paths["home"]) is True
    assert _mode(paths["python"]) == 0o700 and _mode(paths["log"]) == 0o600
    assert (paths["home"] / TREE_MARK).read_text().strip() == TREE_VERSION


def test_a_missing_folder_is_left_missing(tmp_path: Path) -> None:
    assert make_tree_private(tmp_path / "nothing") is False
    assert not (tmp_path / "nothing").exists()
