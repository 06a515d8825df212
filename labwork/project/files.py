"""Reading and writing a project folder. A broken file becomes a `ConfigError` naming its path,
key and expectation, collected in `Project.problems`; everything else still loads."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from pydantic import TypeAdapter, ValidationError

from labwork.errors import Conflict, ConfigError, NotFound
from labwork.project.models import (MASTER_WITH_LIVY, TARGET_KINDS, ComputeTarget, ProjectFile, RunConfig,
                                    check_name)

PROJECT_FILE = "labwork.toml"
_TARGET = TypeAdapter(ComputeTarget)


@dataclass
class Project:
    root: Path
    name: str
    default_runconfig: str
    targets: dict[str, Any] = field(default_factory=dict)
    runconfigs: dict[str, RunConfig] = field(default_factory=dict)
    problems: list[ConfigError] = field(default_factory=list)

    @property
    def config_dir(self) -> Path:
        return self.root / ".labwork"

    @property
    def outputs_dir(self) -> Path:
        return self.root / "outputs"

    def runconfig(self, name: str) -> RunConfig:
        valid_name(name, "run configuration name")
        if name in self.runconfigs:
            return self.runconfigs[name]
        broken = [p for p in self.problems if p.details.get("name") == name]
        if broken:
            raise broken[0]
        raise NotFound(f"no run configuration '{name}' in project '{self.name}'",
                       where=str(self.root), hint=f"known: {', '.join(sorted(self.runconfigs)) or 'none'}")

    def target_of(self, runconfig: RunConfig) -> Any:
        return self.targets[runconfig.target]


def valid_name(name: str, what: str = "name", where: str | None = None) -> str:
    """The one name rule (attach's) for every target or run-configuration name from a request or
    the command line: a name becomes a file name under `.labwork/`, so `../x` or `/abs` never may."""
    try:
        return check_name(name, what)
    except ValueError as exc:
        raise ConfigError(str(exc), where=where or what) from exc


def _one(err: dict) -> tuple[str, str]:
    loc = [str(p) for p in err["loc"]]
    if loc and loc[0] in TARGET_KINDS and err["type"] != "union_tag_invalid":
        loc = loc[1:]  # drop the discriminator's branch name
    key = ".".join(loc)
    if err["type"] == "extra_forbidden":
        return key, f"unknown key '{key}'"
    if err["type"] == "missing":
        return key, f"missing key '{key}'"
    if err["type"] == "union_tag_invalid":
        got = err.get("input", {}).get("type") if isinstance(err.get("input"), dict) else None
        return "type", f"key 'type': expected one of {', '.join(TARGET_KINDS)}, got {got!r}"
    return key, f"key '{key}': {err['msg'].removeprefix('Value error, ')}, got {err.get('input')!r}"


def describe_validation(exc: ValidationError, path: Path) -> ConfigError:
    """Every problem of a pydantic failure, as `path: unknown key 'a'; key 'b': expected ...`."""
    found = [_one(e) for e in exc.errors()]
    found.sort(key=lambda kv: not kv[1].startswith("unknown"))  # typos first: they explain the rest
    return ConfigError("; ".join(msg for _, msg in found[:5]), where=str(path),
                       details={"key": found[0][0], "keys": [k for k, _ in found]})


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", where=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("not UTF-8 text", where=str(path)) from exc


def find_root(start: Path | str | None = None) -> Path:
    """The project folder holding `labwork.toml`: `start` or one of its parents."""
    here = Path(start or Path.cwd()).expanduser().resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    raise NotFound(f"not a labwork project (no {PROJECT_FILE} here or above)", where=str(here),
                   hint="run 'labwork init' in the project folder",
                   hints={"dashboard": "the folder needs a labwork.toml (run 'labwork init' in it once), "
                                       "then add it again"})


def load_project(start: Path | str | None = None) -> Project:
    root = find_root(start)
    path = root / PROJECT_FILE
    try:
        pf = ProjectFile.model_validate(_read_toml(path))
    except ValidationError as exc:
        raise describe_validation(exc, path) from exc
    project = Project(root=root, name=pf.project.name, default_runconfig=pf.defaults.runconfig)
    for f in sorted((root / ".labwork" / "compute").glob("*.toml")):
        try:
            project.targets[f.stem] = _TARGET.validate_python(_read_toml(f))
        except ValidationError as exc:
            err = describe_validation(exc, f)
            err.details["name"] = f.stem
            project.problems.append(err)
        except ConfigError as err:
            err.details["name"] = f.stem
            project.problems.append(err)
    for f in sorted((root / ".labwork" / "runconfig").glob("*.toml")):
        try:
            rc = RunConfig.model_validate(_read_toml(f))
        except ValidationError as exc:
            err = describe_validation(exc, f)
            err.details["name"] = f.stem
            project.problems.append(err)
            continue
        except ConfigError as err:
            err.details["name"] = f.stem
            project.problems.append(err)
            continue
        if rc.target not in project.targets:
            project.problems.append(ConfigError(
                f"key 'target': compute target '{rc.target}' does not exist "
                f"(known: {', '.join(sorted(project.targets)) or 'none'})",
                where=str(f), details={"key": "target", "name": f.stem}))
            continue
        project.runconfigs[f.stem] = rc
    return project


def _write_toml(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: v for k, v in data.items() if v is not None and v != {} }
    if "type" in clean:  # a compute target's kind first, whatever order its model declares fields in
        clean = {"type": clean.pop("type"), **clean}
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(tomlkit.dumps(clean), encoding="utf-8")
    tmp.replace(path)


def init_project(folder: Path | str | None = None, name: str | None = None) -> Project:
    """Write `labwork.toml` and `.labwork/` with a `local` target and run configuration."""
    root = Path(folder or Path.cwd()).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise ConfigError("not a folder", where=str(root))
    root.mkdir(parents=True, exist_ok=True)
    path = root / PROJECT_FILE
    if path.exists():
        raise Conflict("already a labwork project", where=str(path),
                       hint="edit labwork.toml to rename it")
    pf = ProjectFile.model_validate({"project": {"name": name or root.name}})
    _write_toml(path, pf.model_dump(mode="json"))
    (root / "outputs").mkdir(exist_ok=True)
    target_file = root / ".labwork" / "compute" / "local.toml"
    if not target_file.exists():
        _write_toml(target_file, {"type": "local"})
    rc_file = root / ".labwork" / "runconfig" / "local.toml"
    if not rc_file.exists():
        _write_toml(rc_file, {"target": "local", "framework": "python"})
    return load_project(root)


def attach_target(folder: Path | str | None, kind: str, name: str, options: dict[str, Any] | None = None,
                  *, framework: str | None = None, overwrite: bool = False) -> Project:
    """Write a compute target and a run configuration of the same name (Azure ML's way)."""
    project = load_project(folder)
    valid_name(name, "compute target name", where="name")
    if kind not in TARGET_KINDS:
        raise ConfigError(f"unknown compute target kind {kind!r}; expected one of {', '.join(TARGET_KINDS)}",
                          where="KIND")
    data = {"type": kind, **{k: v for k, v in (options or {}).items() if v is not None}}
    if kind == "spark" and data.get("via") == "livy" and "master" in data:
        raise ConfigError(MASTER_WITH_LIVY, where="master")  # even the legacy default: asked for
    try:
        target = _TARGET.validate_python(data)
    except ValidationError as exc:
        raise describe_validation(exc, Path(f"compute target '{name}'")) from exc
    tfile = project.config_dir / "compute" / f"{name}.toml"
    rfile = project.config_dir / "runconfig" / f"{name}.toml"
    if (tfile.exists() or rfile.exists()) and not overwrite:
        raise Conflict(f"compute target or run configuration '{name}' exists", where=str(tfile),
                       hint=f"detach it first: labwork computetarget detach {name}",
                       hints={"dashboard": f"detach it first with Detach in the row of '{name}', or choose another name"})
    if framework is None:
        framework = "pyspark" if kind in ("spark", "livy") else "python"
    rc = RunConfig.model_validate({"target": name, "framework": framework})
    _write_toml(tfile, target.model_dump(mode="json", exclude_none=True))
    _write_toml(rfile, rc.model_dump(mode="json", exclude_none=True, exclude_defaults=True) | {"target": name,
                                                                                           "framework": framework})
    return load_project(project.root)


def detach_target(folder: Path | str | None, name: str) -> Project:
    """Remove a compute target and the run configurations that use it."""
    valid_name(name, "compute target name", where="NAME")
    project = load_project(folder)
    tfile = project.config_dir / "compute" / f"{name}.toml"
    if not tfile.exists():
        raise NotFound(f"no compute target '{name}'", where=str(project.root),
                       hint=f"known: {', '.join(sorted(project.targets)) or 'none'}")
    tfile.unlink()
    for rname, rc in project.runconfigs.items():
        if rc.target == name:
            (project.config_dir / "runconfig" / f"{rname}.toml").unlink(missing_ok=True)
    return load_project(project.root)
