"""The exception tree: drawn in errors.py's docstring, and rebuilt from its wire form."""
from __future__ import annotations

import pytest

from labwork import errors


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
