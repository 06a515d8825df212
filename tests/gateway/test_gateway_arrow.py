"""Spark results at Arrow speed: labwork's sparkmagic kernel (through its launcher) against the
gateway, one driver for the module; the fallback to sparkmagic's own path with the capability off."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.support.gateway import GatewayServer, gw_settings
from tests.support.sparkmagic import SparkmagicKernel, pickled_frame_code, unpickle_after

pytestmark = pytest.mark.slow

# every type the issue names, each with a null in row 1
TYPED_SQL = """SELECT
  CAST(id AS INT) AS i,
  CASE WHEN id = 1 THEN NULL ELSE CAST(id AS INT) END AS i_null,
  CASE WHEN id = 1 THEN NULL ELSE id * 10000000000 END AS big_null,
  CAST(id AS SMALLINT) AS small, CAST(id AS TINYINT) AS tiny,
  CASE WHEN id = 1 THEN NULL ELSE id / 3 END AS dbl_null,
  CAST(id AS FLOAT) AS flt,
  CASE WHEN id = 1 THEN NULL ELSE id % 2 = 0 END AS bool_null,
  id % 2 = 0 AS bool,
  CASE WHEN id = 1 THEN NULL ELSE CONCAT('say "hi"\\n', CAST(id AS STRING), ' \\\\ λ 😀') END AS s,
  CASE WHEN id = 1 THEN NULL ELSE CAST(id + 0.25 AS DECIMAL(10, 2)) END AS dec,
  CASE WHEN id = 1 THEN NULL ELSE DATE_ADD(DATE'2024-02-28', CAST(id AS INT)) END AS d,
  CASE WHEN id = 1 THEN NULL ELSE TIMESTAMP'2024-03-10 01:30:00' + MAKE_INTERVAL(0, 0, 0, 0, CAST(id AS INT)) END AS ts,
  CASE WHEN id = 1 THEN NULL ELSE TIMESTAMP_NTZ'2024-03-10 01:30:00' END AS ts_ntz,
  CASE WHEN id = 1 THEN NULL ELSE CAST(CONCAT('b', CAST(id AS STRING)) AS BINARY) END AS bin,
  CASE WHEN id = 1 THEN NULL ELSE ARRAY(id, id + 1) END AS arr,
  CASE WHEN id = 1 THEN NULL ELSE NAMED_STRUCT('a', id, 'b', CONCAT('x', CAST(id AS STRING))) END AS st
FROM range(4)"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    gw = GatewayServer(gw_settings(), tmp_path_factory.mktemp("arrow-gw")).start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def kernel(gateway: GatewayServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkmagicKernel]:
    k = SparkmagicKernel(tmp_path_factory.mktemp("arrow-kernel"), gateway.url)
    first = k("spark.range(1).count()")
    assert first.ok, first.text
    yield k
    k.stop()


def settings_of(gateway: GatewayServer):  # noqa: ANN201
    return gateway.app.state.gateway.settings


def driver_frame(kernel: SparkmagicKernel, expr: str) -> pd.DataFrame:
    """`expr` evaluated in the driver (a pandas frame), carried back pickled."""
    marker = f"DRV-{uuid.uuid4().hex}:"
    cell = kernel(pickled_frame_code(expr, marker))
    assert cell.ok, cell.text
    return unpickle_after(cell.text, marker)


def session_id(gateway: GatewayServer) -> int:
    with gateway.client() as c:
        sessions = c.get("/sessions").json()["sessions"]
    return [s for s in sessions if s["state"] in ("idle", "busy")][0]["id"]


def test_version_advertises_the_capability(gateway: GatewayServer) -> None:
    with gateway.client() as c:
        assert c.get("/version").json()["labwork"] == {"arrow": 1}
        settings_of(gateway).arrow_results = False
        try:
            assert c.get("/version").json()["labwork"] == {}
        finally:
            settings_of(gateway).arrow_results = True


def test_every_type_with_nulls_equals_to_pandas(kernel: SparkmagicKernel) -> None:
    cell = kernel(f"%%sql -o typed -n -1 -q\n{TYPED_SQL}")
    assert cell.ok, cell.text
    assert "(-n to change)" not in cell.text  # every row came
    ours = kernel.local_frame("typed")
    ref = driver_frame(kernel, "(spark.conf.set('spark.sql.execution.arrow.pyspark.enabled', 'true'),"
                               f" spark.sql({TYPED_SQL!r}).toPandas())[1]")
    assert list(ours.dtypes.astype(str)) == list(ref.dtypes.astype(str))
    pd.testing.assert_frame_equal(ours, ref)
    assert ours["s"][0] == 'say "hi"\n0 \\ λ 😀' and ours["s"][1] is None
    assert str(ours["ts"].dtype).startswith("datetime64") and str(ours["i"].dtype) == "int32"


def test_truncation_is_said(kernel: SparkmagicKernel) -> None:
    cell = kernel("%%sql -o cut -n 2500\nSELECT id FROM range(1234567)")
    assert cell.ok, cell.text
    assert "showing 2,500 of 1,234,567 rows (-n to change)" in cell.text
    shape = kernel("%%local\nprint('shape', cut.shape, cut['id'].tolist()[:3])")
    assert "shape (2500, 1) [0, 1, 2]" in shape.text, shape.text
    sampled = kernel("%%sql -o smp -m sample -r 0.5 -n 5\nSELECT id FROM range(1000)")
    assert sampled.ok and "sampled rows of 1,000" in sampled.text, sampled.text


def test_spark_o_brings_a_named_dataframe(kernel: SparkmagicKernel) -> None:
    cell = kernel("%%spark -o sdf\nsdf = spark.range(5).selectExpr('id', 'CAST(id * 2 AS INT) AS twice')")
    assert cell.ok, cell.text
    local = kernel.local_frame("sdf")
    assert local["twice"].tolist() == [0, 2, 4, 6, 8]
    assert [str(t) for t in local.dtypes] == ["int64", "int32"]
    missing = kernel("%%spark -o nope\nx = 1")
    assert "not defined" in missing.text, missing.text


def test_size_guard_refuses_with_the_size_and_how_to_sample(gateway: GatewayServer,
                                                             kernel: SparkmagicKernel) -> None:
    settings_of(gateway).max_result_bytes = 100_000
    try:
        cell = kernel("%%sql -o huge -n -1\nSELECT id FROM range(200000)")
        assert "the result is" in cell.text and "KiB" in cell.text, cell.text
        assert "-m sample" in cell.text and "gateway.max_result_bytes" in cell.text, cell.text
        assert "Traceback" not in cell.text
        gone = kernel("%%local\nprint('huge' in dir())")
        assert "False" in gone.text
    finally:
        settings_of(gateway).max_result_bytes = 2 * 1024 ** 3
    again = kernel("%%sql -o fine -n 10 -q\nSELECT id FROM range(200000)")
    assert "showing 10 of 200,000 rows" in again.text, again.text


def test_a_filtered_query_over_a_large_range_is_not_refused(gateway: GatewayServer,
                                                            kernel: SparkmagicKernel) -> None:
    """Spark estimates a filter at its input's size: only the measured size may refuse it."""
    settings_of(gateway).max_result_bytes = 100_000
    try:
        few = kernel("%%sql -o few -n -1 -q\nSELECT id FROM range(200000) WHERE id < 10")
        assert few.ok and "ResultTooLarge" not in few.text and "limit of" not in few.text, few.text
        shown = kernel("%%local\nprint('few', few.shape, int(few['id'].sum()))")
        assert "few (10, 1) 45" in shown.text, shown.text
        grouped = kernel("%%sql -o grouped -n -1 -q\n"
                         "SELECT id % 3 AS k, COUNT(*) AS n FROM range(200000) GROUP BY 1")
        assert grouped.ok and "limit of" not in grouped.text, grouped.text
        # a filter that keeps half the rows is over the bound: measured while collecting
        half = kernel("%%sql -o half -n -1\nSELECT id FROM range(200000) WHERE id % 2 = 0")
        assert "collecting stopped at" in half.text and "-m sample" in half.text, half.text
        assert "gateway.max_result_bytes" in half.text and "Traceback" not in half.text
        assert "False" in kernel("%%local\nprint('half' in dir())").text
    finally:
        settings_of(gateway).max_result_bytes = 2 * 1024 ** 3
    after = kernel("%%sql -o after -n -1 -q\nSELECT id FROM range(5)")  # the driver is fine
    assert after.ok and "after (5, 1)" in kernel("%%local\nprint('after', after.shape)").text


POLICY = ("%%local\nprint('policy', get_ipython().magics_manager.registry['KernelMagics']"
          ".spark_controller.get_session_by_name_or_default(None)._policy.retry_seconds_to_sleep_list)")


def test_statements_poll_on_sparkmagics_schedule_started_shorter(kernel: SparkmagicKernel) -> None:
    from labwork.gateway.arrow_magics import POLL_SECONDS
    cell = kernel(POLICY)
    assert f"policy {POLL_SECONDS}" in cell.text, cell.text


def test_a_million_rows(kernel: SparkmagicKernel) -> None:
    cell = kernel("%%sql -o million -n -1 -q\nSELECT id, CAST(id AS DOUBLE) / 2 AS half FROM range(1000000)")
    assert cell.ok, cell.text
    out = kernel("%%local\nprint('m', million.shape, int(million['id'].sum()), str(million['half'].dtype))")
    assert "m (1000000, 2) 499999500000 float64" in out.text, out.text


def test_send_to_spark_keeps_hostile_strings(kernel: SparkmagicKernel) -> None:
    hostile = ['quote " and \' both', "back\\slash \\n not a newline", "new\nline\r\n",
               "λ 😀 ü", None, "'''triple''' \"\"\"double\"\"\""]
    setup = kernel("%%local\nimport pandas as pd\n"
                   f"hostile = pd.DataFrame({{'s': {hostile!r}, 'n': list(range({len(hostile)})), "
                   f"'x': [0.5 * i for i in range({len(hostile)})]}})\n"
                   "plain = 'text with \"quotes\" λ'")
    assert setup.ok, setup.text
    sent = kernel("%%send_to_spark -i hostile -t df -n remote")
    assert sent.ok and "Successfully passed 'hostile' as 'remote'" in sent.text, sent.text
    back = driver_frame(kernel, "remote.toPandas()")
    original = kernel.local_frame("hostile")
    pd.testing.assert_frame_equal(back, original)
    assert back["s"].tolist() == hostile
    as_str = kernel("%%send_to_spark -i plain -t str -n remote_str")
    assert as_str.ok, as_str.text
    shown = kernel("print(remote_str)")
    assert 'text with "quotes" λ' in shown.text


def test_endpoint_refusals_are_clear(gateway: GatewayServer, kernel: SparkmagicKernel) -> None:
    sid = session_id(gateway)
    with gateway.client() as c:
        r = c.post(f"/sessions/{sid}/arrow", json={"code": "SELECT 1", "rows": 3})
        assert r.status_code == 400 and "unknown field 'rows'" in r.json()["msg"]
        r = c.post(f"/sessions/{sid}/arrow", json={"code": "SELECT 1", "samplefraction": 2})
        assert r.status_code == 400 and "samplefraction" in r.json()["msg"]
        r = c.get(f"/sessions/{sid}/statements/0/arrow")
        assert r.status_code == 404 and "not an Arrow result" in r.json()["msg"]
        r = c.post(f"/sessions/{sid}/arrow/upload?name=x", content=b"abc",
                   headers={"Content-Type": "text/plain"})
        assert r.status_code == 415 and "Arrow IPC stream" in r.json()["msg"]
        r = c.post(f"/sessions/{sid}/arrow/upload?name=1bad", content=b"abc",
                   headers={"Content-Type": "application/vnd.apache.arrow.stream"})
        assert r.status_code == 400 and "name" in r.json()["msg"]
        r = c.post(f"/sessions/{sid}/arrow/upload?name=junk", content=b"not arrow at all",
                   headers={"Content-Type": "application/vnd.apache.arrow.stream"})
        assert r.status_code == 400 and "not a readable Arrow IPC stream" in r.json()["msg"]


def test_capability_off_gives_sparkmagics_usual_result(gateway: GatewayServer,
                                                       tmp_path: Path) -> None:
    settings_of(gateway).arrow_results = False
    plain = None
    try:
        plain = SparkmagicKernel(tmp_path / "plain", gateway.url)
        cell = plain("%%sql -o df -n 10\nSELECT id, CONCAT('r', CAST(id AS STRING)) AS label FROM range(100)")
        assert cell.ok, cell.text
        assert "(-n to change)" not in cell.text  # sparkmagic cuts silently
        out = plain("%%local\nprint('p', df.shape, list(df['label'])[:2], str(df['id'].dtype))")
        assert "p (10, 2) ['r0', 'r1'] int64" in out.text, out.text
        assert "policy [0.2, 0.5, 0.5, 1, 1, 2]" in plain(POLICY).text  # sparkmagic's own
        with gateway.client() as c:
            sessions = c.get("/sessions").json()["sessions"]
            codes = [st["code"] for s in sessions
                     for st in c.get(f"/sessions/{s['id']}/statements").json()["statements"]]
        assert any("toJSON" in code for code in codes)  # sparkmagic's own generated code ran
    finally:
        settings_of(gateway).arrow_results = True
        if plain is not None:
            plain.stop()


def test_pinned_sparkmagic_internals() -> None:
    """What arrow_magics relies on in sparkmagic 0.23: an upgrade that moves it fails here."""
    import inspect
    from importlib.metadata import version

    from sparkmagic.kernels.kernelmagics import KernelMagics
    from sparkmagic.kernels.wrapperkernel.sparkkernelbase import SparkKernelBase
    from sparkmagic.livyclientlib.endpoint import Endpoint
    from sparkmagic.livyclientlib.livyreliablehttpclient import LivyReliableHttpClient
    from sparkmagic.livyclientlib.livysession import LivySession
    from sparkmagic.livyclientlib.linearretrypolicy import LinearRetryPolicy
    from sparkmagic.livyclientlib.reliablehttpclient import ReliableHttpClient
    from sparkmagic.utils.constants import FINAL_STATEMENT_STATUS
    from sparkmagic.utils.utils import parse_argstring_or_throw

    assert version("sparkmagic") == "0.23.0"
    for name, flags in (("sql", ["-o", "-q", "-m", "-n", "-r"]), ("spark", ["-o", "-m", "-n", "-r"]),
                        ("send_to_spark", ["-i", "-t", "-n", "-m"])):
        parser = getattr(KernelMagics, name).parser
        options = {o for a in parser._actions for o in a.option_strings}
        assert set(flags) <= options, (name, options)
    args = parse_argstring_or_throw(KernelMagics.sql, "-o df -n 5 -m sample -r 0.5 -q")
    assert (args.output, args.maxrows, args.samplemethod, args.samplefraction, args.quiet) == \
        ("df", 5, "sample", 0.5, True)
    assert list(inspect.signature(KernelMagics.execute_spark).parameters)[:8] == \
        ["self", "cell", "output_var", "samplemethod", "maxrows", "samplefraction", "session_name", "coerce"]
    assert callable(KernelMagics._do_not_call_start_session)
    assert {"available", "cancelled"} <= set(FINAL_STATEMENT_STATUS)
    assert callable(LivyReliableHttpClient.get_statement) and callable(LivyReliableHttpClient.cancel_statement)
    assert {"wait_for_idle", "http_client"} <= set(dir(LivySession))
    init = inspect.getsource(LivySession.__init__)
    assert all(f"self.{a} = " in init for a in ("kind", "id", "ipython_display")), init
    base = inspect.getsource(KernelMagics.__mro__[1].__init__)
    assert "self.logger = " in base and "self.ipython_display = " in base
    assert "self._endpoint = endpoint" in inspect.getsource(ReliableHttpClient.__init__)
    assert callable(SparkKernelBase._load_magics_extension)
    from sparkmagic.livyclientlib.command import Command
    from sparkmagic.livyclientlib.configurableretrypolicy import ConfigurableRetryPolicy
    from sparkmagic.livyclientlib.sparkcontroller import SparkController
    assert "session.sleep(retries)" in inspect.getsource(Command._get_statement_output)
    assert "self._policy = ConfigurableRetryPolicy(" in inspect.getsource(LivySession.__init__)
    assert "self._policy.seconds_to_sleep(retries)" in inspect.getsource(LivySession.sleep)
    assert isinstance(SparkController.__dict__["_livy_session"], staticmethod)
    assert ConfigurableRetryPolicy([0.5, 1], 3).seconds_to_sleep(9) == 1
    rc = ReliableHttpClient(Endpoint("http://127.0.0.1:1", None), {"X-Requested-By": "t"},
                            LinearRetryPolicy(0, 0))
    assert rc.compose_url("/sessions/1/arrow") == "http://127.0.0.1:1/sessions/1/arrow"
    assert rc._headers == {"X-Requested-By": "t"} and rc._auth is None
    assert hasattr(rc._session, "post") and isinstance(rc.verify_ssl, bool)


def test_pinned_pyspark_internals() -> None:
    """What arrow_collect (driver) and arrow_frames (kernel) rely on in pyspark."""
    import inspect

    from pyspark.sql.classic.dataframe import DataFrame
    from pyspark.sql.pandas import conversion
    from pyspark.util import _load_from_socket

    params = inspect.signature(conversion._convert_arrow_table_to_pandas).parameters
    assert {"arrow_table", "schema", "timezone", "struct_handling_mode", "date_as_object"} <= set(params)
    to_pandas = inspect.getsource(conversion.PandasConversionMixin._to_pandas)
    assert "_convert_arrow_table_to_pandas(" in to_pandas and "date_as_object=True" in to_pandas
    for conf in ("spark.sql.session.timeZone", "spark.sql.execution.pandas.structHandlingMode"):
        assert conf in to_pandas
    collect = inspect.getsource(conversion.PandasConversionMixin._collect_as_arrow)
    assert "collectAsArrowToPython()" in collect and "ArrowCollectSerializer()" in collect
    assert callable(_load_from_socket) and issubclass(DataFrame, conversion.PandasConversionMixin)


def test_scala_kernel_sql_spark_o_and_send_to_spark(gateway: GatewayServer, tmp_path: Path) -> None:
    scala = SparkmagicKernel(tmp_path / "scala", gateway.url, language="scala")
    try:
        made = scala('val sdf = spark.range(7).selectExpr("id", "CAST(id AS STRING) AS s")')
        assert made.ok, made.text
        pulled = scala("%%spark -o sdf\nval unused = 1")
        assert pulled.ok, pulled.text
        local = scala("%%local\nprint('sc', sdf.shape, str(sdf['id'].dtype), list(sdf['s'])[:2])")
        assert "sc (7, 2) int64 ['0', '1']" in local.text, local.text
        cut = scala("%%sql -o q -n 3\nSELECT id FROM range(50)")
        assert "showing 3 of 50 rows (-n to change)" in cut.text, cut.text
        setup = scala("%%local\nimport pandas as pd\nfrm = pd.DataFrame({'t': ['a\"b', 'c\\\\nd λ']})")
        assert setup.ok, setup.text
        sent = scala("%%send_to_spark -i frm -t df -n fromLocal")
        assert sent.ok and "Successfully passed" in sent.text, sent.text
        back = scala('println(fromLocal.collect().map(_.getString(0)).mkString("|"))')
        assert 'a"b|c\\nd λ' in back.text, back.text
    finally:
        scala.stop()
