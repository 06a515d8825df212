"""Scala (`kind: spark`) sessions speak Livy exactly: the `livy` client from PyPI and plain HTTP
against one Scala session shared by this module (issue 15, items 1-8)."""
from __future__ import annotations

import re

import pandas as pd
import pytest
from tests.support.gateway import run, text, wait_session
from livy import LivySession, SessionKind
from livy.models import SparkRuntimeError

pytestmark = pytest.mark.slow

NASTY = ['say "hi"', "it's", "back\\slash", "tab\there", "new\nline\rcr", "λ-calculus", "emoji 😀🚀",
         "{\"json\": [1, 2]}", "  padded both  ", " lead", "trail "]


@pytest.fixture(scope="module")
def scala(gateway):
    """One Scala session for the module, made by the livy client as a user would."""
    s = LivySession.create(gateway.url, kind=SessionKind.SPARK, name="scala-module",
                           driver_memory="512m")
    with gateway.client() as c:
        assert wait_session(c, s.session_id)["state"] == "idle"
    yield s
    with gateway.client() as c:
        c.delete(f"/sessions/{s.session_id}")


def test_livy_client_dataframes_with_hostile_strings(scala):
    """Items 1-3 through the real client: raw REPL output with its newlines, Livy's start-up
    imports (`trim`, `col`, `$`, `sql`), and upload/download (`toJSON.collect.foreach(println)`,
    which makes the 2.13 compiler warn) round-trip hostile strings."""
    assert scala.run('println("foo")').text == "foo\n"
    assert re.fullmatch(r"res\d+: Long = 100\n", scala.run("spark.range(100).count()").text)
    assert re.fullmatch(r"res\d+: Long = 1\n", scala.run('sql("SELECT 1 AS one").count()').text)
    frame = pd.DataFrame({"n": list(range(len(NASTY))), "s": NASTY})
    scala.upload("uploaded", frame)
    assert re.fullmatch(r"res\d+: Long = 11\n", scala.run("uploaded.count()").text)
    back = scala.download("uploaded").sort_values("n").reset_index(drop=True)
    assert list(back["s"]) == NASTY and list(back["n"]) == list(range(len(NASTY)))
    out = scala.run('val trimmed = uploaded.select($"n", trim(col("s")).as("t"), lit(1).as("one"))')
    assert out.text.startswith("trimmed: org.apache.spark.sql.DataFrame = [n: bigint, t: string")
    got = scala.download("trimmed").sort_values("n").reset_index(drop=True)
    assert list(got["t"]) == [s.strip(" ") for s in NASTY] and set(got["one"]) == {1}


def test_livy_client_errors_have_livys_shape(scala):
    """Item 6: ename "Error", evalue the first line, traceback the lines after it."""
    with pytest.raises(SparkRuntimeError) as info:
        scala.run('val x: Int = "nope"')
    assert info.value.ename == "Error" and info.value.evalue == "error: type mismatch;"
    assert [ln.strip() for ln in info.value.traceback] == ['found   : String("nope")',
                                                           "required: Int"]
    assert all(ln.endswith("\n") for ln in info.value.traceback)
    with pytest.raises(SparkRuntimeError) as info:
        scala.run('throw new RuntimeException("boom")')
    assert info.value.evalue == "java.lang.RuntimeException: boom"
    assert info.value.traceback and "elided" in info.value.traceback[-1]


def test_output_order_comments_and_incomplete(gateway, scala):
    """Items 5 and 7: line by line as Livy interprets it; comments alone succeed."""
    sid = scala.session_id
    with gateway.client() as c:
        assert text(run(c, sid, 'val a = 1\nprintln("after a")')) == "a: Int = 1\nafter a\n"
        assert text(run(c, sid, "// only a comment")) == ""
        assert text(run(c, sid, "/* block */\n// and a line")) == ""
        multi = text(run(c, sid, "def f(x: Int) = {\n  x + 1\n}\n// call it\nf(a)"))
        assert re.fullmatch(r"def f\(x: Int\): Int\nres\d+: Int = 2\n", multi), multi
        inc = run(c, sid, "sc.")["output"]
        assert inc["status"] == "error" and inc["evalue"] == "incomplete statement"


def test_compiler_warnings_go_to_the_log(gateway, scala):
    """Item 2: the deprecation summary is not in the output (it breaks row parsers) but in /log."""
    sid = scala.session_id
    with gateway.client() as c:
        out = text(run(c, sid, "spark.range(3).toDF(\"id\").toJSON.collect.foreach(println)"))
        assert out == '{"id":0}\n{"id":1}\n{"id":2}\n'
        assert "warning" not in text(run(c, sid, "sc.parallelize(Array(1, 2, 3)).count()"))
        log = c.get(f"/sessions/{sid}/log", params={"size": -1}).json()["log"]
        assert any(line.startswith("warning: ") and "deprecation" in line for line in log), log


def test_json_and_table_magics(gateway, scala):
    """Item 4: `%json` and `%table` as Livy's Scala interpreter answers them."""
    sid = scala.session_id
    with gateway.client() as c:
        run(c, sid, 'case class P(name: String, n: Int)\nval ps = Seq(P("x λ", 1), P("y", 2))\n'
                    'val m = Map("a" -> 1, "b" -> 2)\nval nums = sc.parallelize(1 to 100)')
        js = run(c, sid, "%json m")["output"]
        assert js["status"] == "ok" and js["data"] == {"application/json": {"a": 1, "b": 2}}
        rdd = run(c, sid, "%json nums")["output"]["data"]["application/json"]
        assert rdd == list(range(1, 11))  # an RDD: its first 10 items, as Livy
        table = run(c, sid, "%table ps")["output"]["data"]["application/vnd.livy.table.v1+json"]
        assert table == {"headers": [{"type": "STRING_TYPE", "name": "name"},
                                     {"type": "BIGINT_TYPE", "name": "n"}],
                         "data": [["x λ", 1], ["y", 2]]}
        missing = run(c, sid, "%json nowhere")["output"]
        assert missing["status"] == "error" and missing["ename"] == "NameError"
        assert missing["evalue"] == "Value nowhere does not exist"
        unknown = run(c, sid, "%nosuch x")["output"]
        assert unknown["ename"] == "UnknownMagic"


def test_scala_completion(gateway, scala):
    """Item 8: real candidates from the Scala REPL's completer."""
    with gateway.client() as c:
        r = c.post(f"/sessions/{scala.session_id}/completion",
                   json={"code": "spark.ran", "kind": "spark", "cursor": 9})
        assert r.status_code == 200 and "range" in r.json()["candidates"], r.text
        r = c.post(f"/sessions/{scala.session_id}/completion",
                   json={"code": "sc.paralle", "cursor": 10})
        assert "parallelize" in r.json()["candidates"], r.text
