"""The `livy` client from PyPI, unmodified, against the gateway."""
from __future__ import annotations

import pandas as pd
import pytest
from livy import LivySession, SessionKind
from livy.models import SparkRuntimeError

pytestmark = pytest.mark.slow

NASTY = ['say "hi"', "it's", "back\\slash", "tab\there", "new\nline\rcr", "λ-calculus", "emoji 😀🚀",
         "{\"json\": [1, 2]}"]


def test_run_upload_download(gateway, sessions):
    s = LivySession(gateway.url, sessions["pyspark"], kind=SessionKind.PYSPARK, echo=False)
    assert s.state.value == "idle"
    assert s.run("1 + 1").text == "2"
    assert s.run("print('foo')\nx = 5\nx").text == "foo\n5"
    assert s.run("y = 3").text == ""
    df = pd.DataFrame({"n": list(range(len(NASTY))), "s": NASTY})
    s.upload("uploaded", df)
    assert s.run("uploaded.count()").text == str(len(NASTY))
    back = s.download("uploaded").sort_values("n").reset_index(drop=True)
    assert list(back["s"]) == NASTY
    assert list(back["n"]) == list(range(len(NASTY)))


def test_error_raises_spark_runtime_error(gateway, sessions):
    s = LivySession(gateway.url, sessions["pyspark"], kind=SessionKind.PYSPARK, echo=False)
    with pytest.raises(SparkRuntimeError) as info:
        s.run("{}['foo']")
    assert info.value.ename == "KeyError"
    assert info.value.evalue == "'foo'"
    assert all(line.endswith("\n") for line in info.value.traceback)
    assert info.value.traceback[-1] == "KeyError: 'foo'\n"


def test_sql_session_download_sql(gateway, sessions):
    s = LivySession(gateway.url, sessions["sql"], kind=SessionKind.SQL, echo=False)
    df = s.download_sql("SELECT id, CAST(id * 2 AS STRING) AS twice, 'λ😀' AS u FROM range(3)")
    assert list(df.columns) == ["id", "twice", "u"]
    assert df["id"].tolist() == [0, 1, 2]
    assert df["twice"].tolist() == ["0", "2", "4"]
    assert set(df["u"]) == {"λ😀"}
    with pytest.raises(SparkRuntimeError):
        s.download_sql("SELECT * FROM no_such_table")
