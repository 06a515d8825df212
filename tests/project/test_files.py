"""Project files: init, compute targets, run configurations and broken files."""
from pathlib import Path

import pytest

from labwork.errors import Conflict, ConfigError, NotFound
from labwork.project import attach_target, detach_target, init_project, load_project


def test_init_writes_local_target_and_runconfig(tmp_path: Path) -> None:
    p = init_project(tmp_path / "p", "myIris")
    assert p.name == "myIris"
    assert (p.root / "labwork.toml").read_text().startswith("[project]")
    assert set(p.targets) == {"local"} and set(p.runconfigs) == {"local"}
    assert p.runconfigs["local"].framework == "python"
    assert (p.root / "outputs").is_dir()
    with pytest.raises(Conflict, match="already a labwork project"):
        init_project(tmp_path / "p")


def test_init_default_name_is_folder(tmp_path: Path) -> None:
    assert init_project(tmp_path / "sales").name == "sales"


@pytest.mark.parametrize("kind,options,framework", [
    ("spark", {"master": "local[2]"}, "pyspark"),
    ("spark", {"master": "spark://127.0.0.1:7077"}, "pyspark"),
    ("spark", {"via": "livy"}, "pyspark"),
    ("livy", {"url": "http://livy.example:8998", "auth": "basic", "username": "u", "password_env": "LIVY_PW"}, "pyspark"),
    ("docker", {"image": "python:3.11-slim"}, "python"),
    ("remote", {"host": "gpu1", "user": "ds", "port": 2222}, "python"),
    ("local", {}, "python"),
])
def test_attach_each_kind(tmp_path: Path, kind: str, options: dict, framework: str) -> None:
    init_project(tmp_path / "p")
    p = attach_target(tmp_path / "p", kind, "t1", options)
    assert p.targets["t1"].type == kind
    assert p.runconfigs["t1"].target == "t1" and p.runconfigs["t1"].framework == framework
    assert not p.problems
    text = (p.root / ".labwork" / "compute" / "t1.toml").read_text()
    assert "password =" not in text  # secrets are named, never stored


def test_attach_bad_input(tmp_path: Path) -> None:
    init_project(tmp_path / "p")
    with pytest.raises(ConfigError, match="master"):
        attach_target(tmp_path / "p", "spark", "s", {"master": "nonsense"})
    with pytest.raises(ConfigError, match="unknown compute target kind"):
        attach_target(tmp_path / "p", "gpu", "s", {})
    with pytest.raises(ConfigError, match="missing key 'url'"):
        attach_target(tmp_path / "p", "livy", "s", {})
    with pytest.raises(ConfigError, match="name"):
        attach_target(tmp_path / "p", "local", "../evil", {})
    attach_target(tmp_path / "p", "local", "l2", {})
    with pytest.raises(Conflict, match="exists"):
        attach_target(tmp_path / "p", "local", "l2", {})
    assert not list((tmp_path / "p" / ".labwork" / "compute").glob("s.toml"))


def test_master_with_via_livy_is_refused_with_what_to_do(tmp_path: Path) -> None:
    """Through the gateway the sessions run on the gateway's master: a target's own master would be
    silently ignored, so attach refuses it, and a hand-written file with both is reported."""
    root = init_project(tmp_path / "p").root
    with pytest.raises(ConfigError) as info:
        attach_target(root, "spark", "sl", {"master": "spark://10.0.0.1:7077", "via": "livy"})
    assert "master cannot be set with via = \"livy\"" in info.value.message
    assert "[gateway] master" in info.value.message and "via = \"kernel\"" in info.value.message
    assert not (root / ".labwork" / "compute" / "sl.toml").exists()
    p = attach_target(root, "spark", "ok", {"via": "livy"})  # no master: the gateway's
    assert "master" not in (root / ".labwork" / "compute" / "ok.toml").read_text() and not p.problems
    hand = root / ".labwork" / "compute" / "hand.toml"
    hand.write_text('type = "spark"\nmaster = "local[4]"\nvia = "livy"\n')
    (root / ".labwork" / "runconfig" / "hand.toml").write_text('target = "hand"\nframework = "pyspark"\n')
    problems = [e for e in load_project(root).problems if e.where == str(hand)]
    assert problems and "master cannot be set with via = \"livy\"" in problems[0].message
    with pytest.raises(ConfigError, match="master cannot be set"):  # asked for: refused, default or not
        attach_target(root, "spark", "sd", {"master": "local[*]", "via": "livy"})


def test_a_file_from_before_with_the_old_default_master_and_via_livy_still_loads(tmp_path: Path) -> None:
    """Earlier versions wrote master = "local[*]" into every spark target: upgrading breaks nothing."""
    root = init_project(tmp_path / "p").root
    (root / ".labwork" / "compute" / "old.toml").write_text('type = "spark"\nmaster = "local[*]"\nvia = "livy"\n')
    (root / ".labwork" / "runconfig" / "old.toml").write_text('target = "old"\nframework = "pyspark"\n')
    project = load_project(root)
    assert not project.problems and project.targets["old"].master is None


def test_detach_removes_target_and_its_runconfig(tmp_path: Path) -> None:
    init_project(tmp_path / "p")
    attach_target(tmp_path / "p", "spark", "sp", {})
    p = detach_target(tmp_path / "p", "sp")
    assert set(p.targets) == {"local"} and set(p.runconfigs) == {"local"}
    with pytest.raises(NotFound, match="no compute target 'sp'"):
        detach_target(tmp_path / "p", "sp")


def test_broken_files_are_reported_and_others_still_load(tmp_path: Path) -> None:
    root = init_project(tmp_path / "p").root
    attach_target(root, "spark", "good", {"master": "local[2]"})
    rc = root / ".labwork" / "runconfig"
    (rc / "badtoml.toml").write_text("target = \n")
    (rc / "unknown.toml").write_text('target = "local"\ncolour = "red"\n')
    (rc / "wrongtype.toml").write_text('target = "local"\nhistory = "sometimes"\n')
    (rc / "notarget.toml").write_text('target = "cluster9"\n')
    (rc / "badframework.toml").write_text('target = "local"\nframework = "rust"\n')
    (root / ".labwork" / "compute" / "badtarget.toml").write_text('type = "mainframe"\n')
    p = load_project(root)
    assert set(p.runconfigs) == {"local", "good"}
    by_name = {e.details["name"]: e for e in p.problems}
    assert "not valid TOML" in by_name["badtoml"].message
    assert by_name["unknown"].message == "unknown key 'colour'"
    assert by_name["unknown"].where == str(rc / "unknown.toml")
    assert "history" in by_name["wrongtype"].message and "sometimes" in by_name["wrongtype"].message
    assert "'cluster9' does not exist" in by_name["notarget"].message
    assert "framework" in by_name["badframework"].message
    assert "type" in by_name["badtarget"].message and "mainframe" in by_name["badtarget"].message
    with pytest.raises(ConfigError, match="colour"):
        p.runconfig("unknown")
    with pytest.raises(NotFound, match="no run configuration 'nope'"):
        p.runconfig("nope")


def test_broken_project_file(tmp_path: Path) -> None:
    root = init_project(tmp_path / "p").root
    (root / "labwork.toml").write_text("[project]\nnmae = 'x'\n")
    with pytest.raises(ConfigError) as err:
        load_project(root)
    assert err.value.where == str(root / "labwork.toml")
    assert "nmae" in err.value.message


def test_not_a_project(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="not a labwork project"):
        load_project(tmp_path)


def test_found_from_a_subfolder(tmp_path: Path) -> None:
    root = init_project(tmp_path / "p").root
    (root / "notebooks" / "deep").mkdir(parents=True)
    assert load_project(root / "notebooks" / "deep").root == root
