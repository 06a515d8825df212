"""The exception tree: drawn in errors.py's docstring, and rebuilt from its wire form."""
from __future__ import annotations

import importlib
import pkgutil

import pytest

import labwork
from labwork import errors

# Modules not imported: `labwork.__main__` runs the command line when imported.
NOT_IMPORTED = {"labwork.__main__"}


def _import_every_module() -> list[str]:
    """Import every labwork module before the tree is walked, so that a subclass defined anywhere
    (`notebooks.spawner.StartFailed`, ...) is in it whatever the tests before imported. Only a
    module whose optional dependency is missing here is passed over (named in the answer); any
    other failure to import fails the test module."""
    missing: list[str] = []

    def walk_error(name: str) -> None:  # a package that failed to import while being walked
        raise ImportError(f"cannot import {name}")

    for info in pkgutil.walk_packages(labwork.__path__, "labwork.", onerror=walk_error):
        if info.name in NOT_IMPORTED:
            continue
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] == "labwork":
                raise
            missing.append(f"{info.name} (needs {exc.name})")
    return missing


PASSED_OVER = _import_every_module()


def test_every_module_was_imported() -> None:
    assert not PASSED_OVER, PASSED_OVER  # the test venv has every extra: nothing is passed over


def _tree() -> list[type[errors.LabworkError]]:
    out, todo = [], [errors.LabworkError]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


def test_the_docstring_draws_every_class_with_its_status() -> None:
    doc = errors.__doc__ or ""
    for cls in _tree():
        line = next((ln for ln in doc.splitlines() if f" {cls.__name__} " in ln), None)
        assert line, cls.__name__
        if cls is not errors.HTTPError:
            assert f" {cls.http_status} " in line and f"exit {cls.exit_code}" in line, line


@pytest.mark.parametrize("cls", [c for c in _tree() if c is not errors.MissingExtra])
def test_round_trip(cls: type[errors.LabworkError]) -> None:
    exc = cls("it broke", where="file.toml", hint="fix it", details={"key": "x"})
    back = errors.LabworkError.from_dict(exc.to_dict(), exc.http_status)
    assert type(back) is cls and back.to_dict() == exc.to_dict() and back.http_status == exc.http_status


def test_from_dict_of_other_shapes() -> None:
    extra = errors.LabworkError.from_dict(errors.MissingExtra("spark", "Spark").to_dict(), 503)
    assert type(extra) is errors.MissingExtra and "labwork[spark]" in (extra.hint or "")
    by_status = errors.LabworkError.from_dict({"detail": "gone"}, 404)
    assert type(by_status) is errors.NotFound and by_status.message == "gone"
    text = errors.LabworkError.from_dict("Bad Gateway", 502)
    assert type(text) is errors.LabworkError and text.http_status == 502 and text.message == "Bad Gateway"
