"""`[resources] memory` of a run configuration: read, and refused with the file and key."""
from __future__ import annotations

from pathlib import Path

import pytest

from labwork.errors import ConfigError
from labwork.project import init_project, load_project


def write_rc(root: Path, name: str, body: str) -> Path:
    path = root / ".labwork" / "runconfig" / f"{name}.toml"
    path.write_text(f'target = "local"\n{body}')
    return path


@pytest.mark.parametrize(("text", "expected"), [("256m", 256 << 20), ("4g", 4 << 30), ("1.5G", 1536 << 20),
                                                ("512MiB", 512 << 20), ("2 GB", 2 << 30)])
def test_memory_sizes_are_read_in_binary_units(tmp_path: Path, text: str, expected: int) -> None:
    root = init_project(tmp_path / "p", "p").root
    write_rc(root, "small", f'[resources]\nmemory = "{text}"\n')
    project = load_project(root)
    assert not project.problems
    assert project.runconfig("small").resources.memory_bytes == expected
    assert project.runconfig("local").resources.memory_bytes is None  # no [resources]: no limit


@pytest.mark.parametrize(("body", "words"), [
    ('[resources]\nmemory = "lots"\n', "memory must be a size such as 256m"),
    ('[resources]\nmemory = 4\n', 'memory must be a quoted size such as "4g"'),
    ('[resources]\nmemory = "10m"\n', "at least 64m"),
    ('[resources]\nmemory = "-1g"\n', "memory must be a size"),
    ('[resources]\nmemroy = "4g"\n', "unknown key 'resources.memroy'"),
])
def test_bad_memory_values_name_file_and_key(tmp_path: Path, body: str, words: str) -> None:
    root = init_project(tmp_path / "p", "p").root
    path = write_rc(root, "bad", body)
    project = load_project(root)
    assert "bad" not in project.runconfigs and "local" in project.runconfigs  # the others still load
    [problem] = [p for p in project.problems if p.where == str(path)]
    assert words in problem.message
    assert problem.details["key"].startswith("resources.")
    with pytest.raises(ConfigError) as err:
        project.runconfig("bad")
    assert err.value.where == str(path)
