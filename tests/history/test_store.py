"""The run-history store on SQLite and PostgreSQL: exactly-once ingestion, queries, artifacts."""
from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import inspect, text

from labwork.errors import ConfigError, Conflict, Forbidden, NotFound
from labwork.history import artifacts, ingestion, queries


def _run(run_id: str, **kw) -> dict:
    return {"id": uuid.uuid4().hex, "type": "run", "run": run_id, "at": kw.pop("at", time.time()),
            "source": "kernel", "project": "myIris", "project_dir": "/p/iris", "notebook": "iris.ipynb",
            "runconfig": "local", "kernel_id": "k1", **kw}


def _entry(run_id: str, seq: int, status: str = "ok", **kw) -> dict:
    t = time.time()
    return {"id": kw.pop("id", uuid.uuid4().hex), "type": "entry", "run": run_id, "seq": seq,
            "execution_count": seq, "code": f"cell {seq}", "started": t, "ended": t + 0.5,
            "status": status, **kw}


def _value(run_id: str, name: str, seq: int, value, entry=None) -> dict:
    return {"id": uuid.uuid4().hex, "type": "value", "run": run_id, "entry": entry, "name": name,
            "seq": seq, "value": value, "at": time.time()}


def test_migrations_create_the_history_tables(store):
    names = set(inspect(store.engine).get_table_names())
    assert {"history_runs", "history_entries", "history_values", "history_artifacts"} <= names
    with store.engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalar()


def test_records_are_stored_exactly_once(store):
    run = uuid.uuid4().hex
    records = [_run(run), {"id": uuid.uuid4().hex, "type": "history", "run": run, "on": True},
               _entry(run, 1), _entry(run, 2, "error", error_name="ValueError", error_value="bad",
                                      traceback="Traceback..."),
               _value(run, "loss", 0, [3, 2]), _value(run, "loss", 1, 1.5)]
    assert ingestion.ingest(store, records) == {"accepted": 6, "duplicates": 0, "refused": []}
    # a replay of everything (a lost answer), then of a part: nothing changes
    assert ingestion.ingest(store, records) == {"accepted": 0, "duplicates": 6, "refused": []}
    assert ingestion.ingest(store, records[2:4] + [_entry(run, 3)]) == {"accepted": 1, "duplicates": 2, "refused": []}
    r = queries.get_run(store, run)
    assert r["entry_count"] == 3 and r["error_count"] == 1 and len(r["entries"]) == 3
    assert r["history"] is True  # the replayed run record did not undo the switch
    assert [e["seq"] for e in r["entries"]] == [1, 2, 3]
    assert r["entries"][1]["error_name"] == "ValueError"
    assert r["status"] == "running"
    end = {"id": uuid.uuid4().hex, "type": "end", "run": run, "at": time.time() + 1}
    ingestion.ingest(store, [end])
    assert queries.get_run(store, run)["status"] == "completed"
    assert ingestion.ingest(store, [end]) == {"accepted": 0, "duplicates": 1, "refused": []}


@pytest.mark.parametrize("last,status", [("error", "failed"), ("interrupted", "interrupted"), ("ok", "completed")])
def test_run_status_follows_the_last_entry(store, last, status):
    run = uuid.uuid4().hex
    ingestion.ingest(store, [_run(run), _entry(run, 1, "error"), _entry(run, 2, last),
                           {"id": uuid.uuid4().hex, "type": "end", "run": run}])
    assert queries.get_run(store, run)["status"] == status


def test_a_bad_record_is_refused_alone(store):
    """Each record has its own savepoint: the refused ones are named with why, the rest land."""
    run = uuid.uuid4().hex
    good = [_run(run), _entry(run, 1), _value(run, "loss", 0, 0.5), _entry(run, 4)]
    bad = [{"id": "x1", "type": "nonsense", "run": run},             # unknown type
           _entry("../../etc", 2),                                   # bad run id
           _entry(run, 3, "weird"),                                  # bad status
           _entry(run, 10**30),                                      # no integer column holds it
           _value(run, "acc", 0, {"not": "a value"})]                # an object is no value
    records = [good[0], good[1], bad[0], bad[1], good[2], bad[2], bad[3], bad[4], good[3]]
    result = ingestion.ingest(store, records)
    assert result["accepted"] == 4 and result["duplicates"] == 0
    assert [(r["index"], r["id"]) for r in result["refused"]] == [(2, "x1"), (3, bad[1]["id"]), (5, bad[2]["id"]),
                                                                  (6, bad[3]["id"]), (7, bad[4]["id"])]
    reasons = [r["error"] for r in result["refused"]]
    assert "unknown type" in reasons[0] and "run id" in reasons[1] and "status" in reasons[2]
    assert reasons[3] and "number, a string or a list" in reasons[4]
    r = queries.get_run(store, run)
    assert [e["seq"] for e in r["entries"]] == [1, 4] and r["entry_count"] == 2
    assert [v["name"] for v in r["values"]] == ["loss"]
    # sent again, the good ones are duplicates and the bad ones refused again: nothing changes
    again = ingestion.ingest(store, records)
    assert again["accepted"] == 0 and again["duplicates"] == 4 and len(again["refused"]) == 5


def test_nan_infinities_and_nul_are_stored_faithfully(store):
    """NaN and +/-inf come back as floats (shown "NaN"/"Infinity" in JSON answers); a NUL in any
    text is shown as U+2400 on both databases."""
    import math

    from labwork.history.tables import EntryRow, ValueRow
    run = uuid.uuid4().hex
    entry = _entry(run, 1, "error", code="x = 'a\x00b'\nlog.log('loss', nan)", error_value="bad\x00value",
                   traceback="Tb\x00")
    records = [_run(run, notebook="nb\x00.ipynb"), entry,
               _value(run, "loss", 0, float("nan")), _value(run, "loss", 1, float("inf")),
               _value(run, "loss", 2, [1.0, float("-inf"), 2.0]), _value(run, "text", 0, "a\x00b"),
               _value(run, "big\x00name", 0, 3)]
    assert ingestion.ingest(store, records)["refused"] == []
    r = queries.get_run(store, run)
    assert r["entries"][0]["code"] == "x = 'a\u2400b'\nlog.log('loss', nan)"
    assert r["entries"][0]["error_value"] == "bad\u2400value" and r["notebook"] == "nb\u2400.ipynb"
    series = queries.value_series(store, run, "loss")
    assert series["kind"] == "number"
    assert [p["value"] for p in series["points"]] == ["NaN", "Infinity", 1.0, "-Infinity", 2.0]
    values = {v["name"]: v for v in r["values"]}
    assert values["text"]["last"] == "a\u2400b" and "big\u2400name" in values
    import json
    json.dumps(r, allow_nan=False)  # what the API answers is strict JSON
    with store.session() as s:  # in Python the floats are themselves
        stored = [v.value for v in s.query(ValueRow).filter(ValueRow.name == "loss").order_by(ValueRow.seq)]
        assert math.isnan(stored[0]) and stored[1] == math.inf and stored[2][1] == -math.inf
        assert s.get(EntryRow, entry["id"]).traceback == "Tb\u2400"


def test_list_runs_filters_and_pages(store):
    base = time.time() - 10 * 86400
    ids = []
    for i in range(7):
        run = f"run{i:02d}" + uuid.uuid4().hex[:8]
        ids.append(run)
        nb = "sub/iris.ipynb" if i % 2 else "other.ipynb"
        proj = "/p/iris" if i < 5 else "/p/wine"
        ingestion.ingest(store, [_run(run, at=base + i * 86400, notebook=nb, project_dir=proj,
                                    project="myIris" if i < 5 else "wine"),
                               _entry(run, 1, "error" if i == 3 else "ok")])
        if i != 6:
            ingestion.ingest(store, [{"id": uuid.uuid4().hex, "type": "end", "run": run}])
    page = queries.list_runs(store, limit=3)
    assert page["total"] == 7 and [r["id"] for r in page["runs"]] == ids[::-1][:3]
    page2 = queries.list_runs(store, limit=3, offset=3)
    assert [r["id"] for r in page2["runs"]] == ids[::-1][3:6]
    assert queries.list_runs(store, project="/p/wine")["total"] == 2
    assert queries.list_runs(store, project="myIris")["total"] == 5
    assert {r["id"] for r in queries.list_runs(store, notebook="iris.ipynb")["runs"]} == {ids[1], ids[3], ids[5]}
    assert queries.list_runs(store, notebook="sub/iris.ipynb")["total"] == 3
    assert [r["id"] for r in queries.list_runs(store, status="failed")["runs"]] == [ids[3]]
    assert queries.list_runs(store, status="running,failed")["total"] == 2
    from datetime import UTC, datetime
    since = datetime.fromtimestamp(base + 4.5 * 86400, UTC).isoformat()
    until = datetime.fromtimestamp(base + 5.5 * 86400, UTC).isoformat()
    assert [r["id"] for r in queries.list_runs(store, since=since, until=until)["runs"]] == [ids[5]]
    day = datetime.fromtimestamp(base + 2 * 86400, UTC).date().isoformat()
    assert queries.list_runs(store, until=day)["total"] == 2
    with pytest.raises(ConfigError, match="unknown run status"):
        queries.list_runs(store, status="sideways")
    with pytest.raises(ConfigError, match="not a date"):
        queries.list_runs(store, since="yesterday")


def test_run_ids_and_prefixes(store):
    a, b = "abcd1234" + "0" * 24, "abcd5678" + "0" * 24
    ingestion.ingest(store, [_run(a), _run(b)])
    assert queries.get_run(store, "abcd12")["id"] == a
    with pytest.raises(Conflict, match="several"):
        queries.get_run(store, "abcd")
    with pytest.raises(NotFound):
        queries.get_run(store, "ffff")
    with pytest.raises(NotFound):
        queries.get_run(store, "../x")


def test_value_series(store):
    run = uuid.uuid4().hex
    ingestion.ingest(store, [_run(run), _entry(run, 1, id="e1"), _value(run, "loss", 0, [0.9, 0.7], "e1"),
                           _value(run, "loss", 1, 0.5), _value(run, "tag", 0, "a"), _value(run, "tag", 1, "b")])
    s = queries.value_series(store, run, "loss")
    assert [(p["step"], p["value"], p["entry_id"]) for p in s["points"]] == [(0, 0.9, "e1"), (1, 0.7, "e1"), (2, 0.5, None)]
    assert s["kind"] == "number"
    assert [p["value"] for p in queries.value_series(store, run, "tag")["points"]] == ["a", "b"]
    with pytest.raises(NotFound):
        queries.value_series(store, run, "nope")
    summary = {v["name"]: v for v in queries.get_run(store, run)["values"]}
    assert summary["loss"]["points"] == 3 and summary["loss"]["count"] == 2 and summary["loss"]["last"] == 0.5


def test_artifacts_are_kept_inside_the_store(store, tmp_path):
    arts = tmp_path / "artifacts"
    run = uuid.uuid4().hex
    ingestion.ingest(store, [_run(run)])
    a1 = artifacts.store_artifact(store, arts, run, "outputs/model.pkl", [b"v1"], artifact_id="a1")
    again = artifacts.store_artifact(store, arts, run, "outputs/model.pkl", [b"other"], artifact_id="a1")
    assert again["duplicate"] and again["sha256"] == a1["sha256"]
    artifacts.store_artifact(store, arts, run, "outputs/model.pkl", [b"version2"], artifact_id="a2")
    file, info = artifacts.artifact_file(store, arts, run, "outputs/model.pkl")
    assert file.read_bytes() == b"version2" and info["id"] == "a2"
    assert file.parent == arts / run
    [listed] = queries.get_run(store, run)["artifacts"]
    assert listed["versions"] == 2 and listed["size"] == 8
    for bad in ("../model.pkl", "/etc/passwd", "model.pkl", "outputs/../../x", "outputs", "outputs\\..\\x"):
        with pytest.raises(Forbidden, match="outputs/"):
            artifacts.store_artifact(store, arts, run, bad, [b"x"])
    with pytest.raises(Forbidden, match=r"over the upload size limit of 5e-05 MB \(history.max_upload_mb\)"):
        artifacts.store_artifact(store, arts, run, "outputs/big.bin", [b"x" * 100], max_mb=0.00005)
    assert sorted(p.name for p in (arts / run).iterdir()) == ["a1", "a2"]  # nothing kept of the refused
    for bad in ("../../token", "outputs/../../../token", "a1", "/etc/passwd", ""):
        with pytest.raises(NotFound):
            artifacts.artifact_file(store, arts, run, bad)
    queries.delete_run(store, arts, run)
    assert not (arts / run).exists()
    with pytest.raises(NotFound):
        queries.get_run(store, run)


def test_an_ambiguous_prefix_is_a_conflict_naming_the_runs_everywhere(store, tmp_path):
    a, b = "dupe1111" + "0" * 24, "dupe2222" + "0" * 24
    ingestion.ingest(store, [_run(a), _run(b), _value(a, "loss", 0, 0.5), _value(b, "loss", 0, 0.4)])
    artifacts.store_artifact(store, tmp_path, a, "outputs/m.bin", [b"x"])
    for read in (lambda: queries.get_run(store, "dupe"),
                 lambda: queries.value_series(store, "dupe", "loss"),
                 lambda: queries.run_overview(store, "dupe"),
                 lambda: queries.compare_runs(store, ["dupe", a]),
                 lambda: artifacts.artifact_file(store, tmp_path, "dupe", "outputs/m.bin"),
                 lambda: artifacts.store_artifact(store, tmp_path, "dupe", "outputs/n.bin", [b"y"]),
                 lambda: queries.delete_run(store, tmp_path, "dupe")):
        with pytest.raises(Conflict) as caught:
            read()
        assert f"{a}, {b}" in caught.value.message
        assert caught.value.details == {"candidates": [a, b]}
    # each prefix that is unique finds its run, through every read
    assert queries.run_overview(store, "dupe1")["run"]["id"] == a
    assert [r["id"] for r in queries.compare_runs(store, ["dupe1", "dupe2"])] == [a, b]
    assert artifacts.artifact_file(store, tmp_path, "dupe1", "outputs/m.bin")[1]["run_id"] == a
    # a prefix with a LIKE wildcard matches it literally, not as a wildcard
    with pytest.raises(NotFound):
        queries.get_run(store, "dupe_")


def test_project_filter_is_the_folder_or_the_name_in_every_list(store):
    here, named, other = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
    ingestion.ingest(store, [_run(here, project="myIris", project_dir="/p/iris"),
                             _run(named, project="myIris", project_dir="/elsewhere/iris"),
                             _run(other, project="wine", project_dir="/p/wine")])
    for refs, expected in (("/p/iris", {here}), ("/p/iris/", {here}), ("myIris", {here, named}),
                           (["/p/iris", "myIris"], {here, named}), (["/p/wine", "myIris"], {here, named, other}),
                           ("nothing", set()), (None, {here, named, other})):
        full = queries.list_runs(store, project=refs)
        brief = queries.list_run_summaries(store, project=refs)
        assert {r["id"] for r in full["runs"]} == expected == {r["id"] for r in brief["runs"]}, refs
        assert full["total"] == brief["total"] == len(expected)
    assert set(brief["runs"][0]) == set(queries.SUMMARY_COLUMNS)


def test_run_overview_pages_entries_and_compare_takes_two_or_three(store):
    run, b, c, d = (uuid.uuid4().hex for _ in range(4))
    ingestion.ingest(store, [_run(run), *(_entry(run, i) for i in range(1, 8)),
                             _value(run, "loss", 0, [0.9, float("nan")]), _value(run, "loss", 1, 0.5),
                             _value(run, "tag", 0, "x"), _run(b), _run(c), _run(d)])
    first = queries.run_overview(store, run, limit=3)
    assert first["entries_total"] == 7 and [e["seq"] for e in first["entries"]] == [1, 2, 3]
    assert [e["seq"] for e in queries.run_overview(store, run, limit=3, offset=6)["entries"]] == [7]
    loss = first["values"]["loss"]
    assert loss["logs"] == 2 and loss["series"][0] == 0.9 and loss["series"][2] == 0.5
    assert loss["series"][1] != loss["series"][1]  # NaN, raw: the page counts it as not drawn
    assert first["values"]["tag"]["last"] == "x" and first["run"]["id"] == run
    # the API's view of the same run agrees
    summary = {v["name"]: v for v in queries.get_run(store, run)["values"]}
    assert summary["loss"]["points"] == len(loss["series"]) and summary["loss"]["count"] == loss["logs"]
    compared = queries.compare_runs(store, [run, b, run, c])
    assert [r["id"] for r in compared] == [run, b, c] and set(compared[0]["values"]) == {"loss", "tag"}
    for refs in ([run], [run, run], [run, b, c, d], []):
        with pytest.raises(ConfigError, match="two or three runs"):
            queries.compare_runs(store, refs)
