"""`%%sql -o`, `%%spark -o` and `%%send_to_spark` at Arrow speed in labwork's sparkmagic kernels.

sparkmagic moves results as one JSON text per row and guesses dtypes on arrival; it stops at
`-n` rows without saying so and pastes `%%send_to_spark` frames into a quoted literal. Against
labwork's gateway (it answers `"labwork": {"arrow": 1}` in `GET /version`), this module registers
magics of the same names in the kernel's IPython (its magic registry is the seam; sparkmagic is not
forked) that keep sparkmagic's flags, parsers, session handling, poller, progress bar, cancel and
auto-visualization, but move the rows as an Arrow IPC stream through the gateway's
`/sessions/{id}/arrow` endpoints: Spark's own record batches, made into the frame `toPandas()`
makes by pyspark's own converters (`arrow_frames.py`), and a cut result says "showing 2,500 of
1,234,567 rows (-n to change)". Against any other Livy nothing is registered (or, if the endpoint
changes later, the stock magic runs), so sparkmagic's own path is unchanged. Sessions of labwork's
gateway poll their statements on sparkmagic's schedule started shorter (`POLL_SECONDS`).

What it relies on in sparkmagic 0.23 (pinned in tests/gateway/test_gateway_arrow.py):
`KernelMagics` in the shell's magics registry with `sql`/`spark`/`send_to_spark` (their argument
parsers), `_do_not_call_start_session`, `execute_spark`, `spark_controller.
get_session_by_name_or_default`, `ipython_display`, `logger`; `Command._get_statement_output`
(polls with `session.sleep(retries)`, i.e. `LivySession._policy`, a `ConfigurableRetryPolicy`);
`SparkController._livy_session`; `LivySession.http_client._http_client` (a `ReliableHttpClient`:
`post`, `compose_url`, `_session`, `_headers`, `_auth`, `verify_ssl`); `SQLQuery`/
`SparkStoreCommand` argument checks.
"""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("labwork.gateway")

ARROW_STREAM_TYPE = "application/vnd.apache.arrow.stream"
_capable: dict[str, bool] = {}


def endpoint_is_labwork(url: str, auth: Any = None, headers: dict | None = None,
                        verify: bool = True, timeout: float = 10.0) -> bool:
    """Does the Livy server at `url` answer labwork's Arrow capability in `GET /version`?"""
    key = url.rstrip("/")
    if key in _capable:
        return _capable[key]
    import requests
    try:
        r = requests.get(key + "/version", auth=auth, headers=headers or {}, verify=verify,
                         timeout=timeout)
        body = r.json() if r.status_code == 200 else {}
        ok = bool(isinstance(body, dict) and (body.get("labwork") or {}).get("arrow"))
    except Exception:  # noqa: BLE001 - unreachable or not JSON: not ours (yet)
        return False
    _capable[key] = ok
    return ok


def _http(session: Any) -> Any:
    """sparkmagic's ReliableHttpClient of a LivySession (its auth, headers, retries)."""
    return session.http_client._http_client


def session_is_labwork(session: Any) -> bool:
    rc = _http(session)
    return endpoint_is_labwork(rc._endpoint.url, rc._auth, _plain_headers(rc), rc.verify_ssl)


def _plain_headers(rc: Any) -> dict:
    return {k: v for k, v in (rc._headers or {}).items() if k.lower() != "content-type"}


def rows_message(summary: dict) -> str | None:
    """What a cell says when the result is not every row, or None."""
    rows, total = int(summary.get("rows", 0)), summary.get("total")
    if summary.get("sampled"):
        return (f"showing {rows:,} sampled rows of {int(total):,} (-r to change the fraction, "
                "-n the rows)")
    if summary.get("truncated"):
        return f"showing {rows:,} of {int(total):,} rows (-n to change)"
    return None


def _statement(session: Any, path: str, body: Any = None, *, raw: bytes | None = None) -> Any:
    """POST an arrow request, then wait for its statement with sparkmagic's own poller (its
    progress bar, its session's sleep schedule: `configure_polling`), cancelling it on interrupt;
    returns (statement id, its JSON output), or raises with its error."""
    from sparkmagic.livyclientlib.command import Command
    from sparkmagic.livyclientlib.exceptions import (BadUserDataException, HttpClientException,
                                                     SparkStatementCancelledException)
    from sparkmagic.utils.constants import COMMAND_INTERRUPTED_MSG
    session.wait_for_idle()
    rc = _http(session)
    url = f"/sessions/{session.id}/{path}"
    if raw is None:
        statement = rc.post(url, [201], body).json()
    else:
        r = rc._session.post(rc.compose_url(url), data=raw, auth=rc._auth, verify=rc.verify_ssl,
                             headers={**_plain_headers(rc), "Content-Type": ARROW_STREAM_TYPE})
        if r.status_code != 201:
            raise HttpClientException(f"Invalid status code '{r.status_code}' from {url} with "
                                      f"error payload: {r.text}")
        statement = r.json()
    sid = statement["id"]
    try:
        ok, output, _mime = Command("")._get_statement_output(session, sid)
    except KeyboardInterrupt:
        session.http_client.cancel_statement(session.id, sid)
        session.wait_for_idle()
        raise SparkStatementCancelledException(COMMAND_INTERRUPTED_MSG) from None
    if not ok:
        raise BadUserDataException(str(output).rstrip())
    if not isinstance(output, dict):  # cancelled: no output
        raise SparkStatementCancelledException(COMMAND_INTERRUPTED_MSG)
    return sid, output


# sparkmagic's session poll schedule (LivySession._policy: 0.2, 0.5, 0.5, 1, 1, 2 s), started
# shorter against labwork's gateway: a small result is ready in milliseconds, and 0.2 s would be
# most of its time. The tail is sparkmagic's own, so long statements are polled as before.
POLL_SECONDS = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 0.5, 1, 1, 2]


def configure_polling(session: Any) -> None:
    """Give a LivySession of labwork's gateway the shorter start of `POLL_SECONDS` (once)."""
    from sparkmagic.livyclientlib.configurableretrypolicy import ConfigurableRetryPolicy
    policy = session._policy
    if policy.retry_seconds_to_sleep_list != POLL_SECONDS and session_is_labwork(session):
        session._policy = ConfigurableRetryPolicy(POLL_SECONDS, policy.max_retries)


def fetch(session: Any, request: dict, timings: dict | None = None) -> tuple[Any, dict]:
    """(pandas DataFrame, summary) of a SQL query or a named DataFrame, as Arrow; `timings`, if
    given, gets the seconds of each step (driver: the statement; stream: the bytes through the
    gateway; decode: Arrow to pandas in the kernel)."""
    import time

    import pyarrow as pa
    from sparkmagic.livyclientlib.exceptions import BadUserDataException, HttpClientException

    from labwork.gateway.arrow_frames import read_stream, to_pandas
    started = time.perf_counter()
    sid, summary = _statement(session, "arrow", request)
    fetched = time.perf_counter()
    rc = _http(session)
    url = rc.compose_url(f"/sessions/{session.id}/statements/{sid}/arrow")
    try:
        with rc._session.get(url, headers=_plain_headers(rc), auth=rc._auth,
                             verify=rc.verify_ssl, stream=True) as r:
            if r.status_code != 200:
                raise HttpClientException(f"Invalid status code '{r.status_code}' from {url} "
                                          f"with error payload: {r.text}")
            r.raw.decode_content = True
            table = read_stream(r.raw)  # batch by batch as the bytes arrive
        streamed = time.perf_counter()
        frame = to_pandas(table)
        if timings is not None:
            timings.update(driver=fetched - started, stream=streamed - fetched,
                           decode=time.perf_counter() - streamed)
        return frame, summary
    except (pa.ArrowException, OSError) as exc:
        raise BadUserDataException(f"the result's Arrow stream broke off ({exc}); run the cell "
                                   "again") from exc


def send(session: Any, frame: Any, name: str, max_rows: int) -> dict:
    """A pandas DataFrame to the driver as Arrow, bound to `name` (Python or Scala)."""
    import pyarrow as pa
    table = pa.Table.from_pandas(frame.head(max_rows) if max_rows >= 0 else frame,
                                 preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=64 * 1024)
    kind = "spark" if session.kind == "spark" else "pyspark"
    _sid, out = _statement(session, f"arrow/upload?name={name}&kind={kind}",
                           raw=sink.getvalue().to_pybytes())
    return out


def _arrow_magics_class():  # noqa: ANN202 - built late: sparkmagic/IPython import on use only
    from IPython.core.magic import Magics, cell_magic, magics_class, needs_local_scope
    from sparkmagic.livyclientlib.exceptions import (BadUserDataException,
                                                     handle_expected_exceptions,
                                                     wrap_unexpected_exceptions)
    from sparkmagic.livyclientlib.sparkstorecommand import SparkStoreCommand
    from sparkmagic.livyclientlib.sqlquery import SQLQuery
    from sparkmagic.utils.utils import parse_argstring_or_throw

    @magics_class
    class ArrowMagics(Magics):
        """sparkmagic's `sql`, `spark` and `send_to_spark`, moving rows as Arrow."""

        def __init__(self, shell: Any, kernel_magics: Any) -> None:
            super().__init__(shell)
            self.km = kernel_magics
            # what sparkmagic's error decorators use
            self.ipython_display, self.logger = kernel_magics.ipython_display, kernel_magics.logger

        def _labwork_session(self, stock: Any, line: str, cell: str, local_ns: Any) -> tuple:
            """(the session, None) when it is labwork's gateway's; else (None, what the stock
            magic answers, or None where sparkmagic would not start a session)."""
            if not self.km._do_not_call_start_session(""):
                return None, None
            session = self.km.spark_controller.get_session_by_name_or_default(None)
            if not session_is_labwork(session):
                return None, stock(line, cell, local_ns)
            return session, None

        def _pull(self, session: Any, request: dict, limits: Any, output: str | None) -> Any:
            """Fetch `request` under sparkmagic's checked `limits` (-n/-m/-r), say what was cut,
            bind it to `output`; the frame."""
            df, summary = fetch(session, {**request, "maxrows": limits.maxrows,
                                          "samplemethod": limits.samplemethod,
                                          "samplefraction": limits.samplefraction})
            message = rows_message(summary)
            if message:
                self.ipython_display.write(message + "\n")
            if output is not None:
                self.shell.user_ns[output] = df
            return df

        @cell_magic
        @needs_local_scope
        @wrap_unexpected_exceptions
        @handle_expected_exceptions
        def sql(self, line: str, cell: str = "", local_ns: Any = None) -> Any:
            args = parse_argstring_or_throw(self.km.sql, line)
            query = SQLQuery(cell, args.samplemethod, args.maxrows, args.samplefraction)
            session, stock = self._labwork_session(self.km.sql, line, cell, local_ns)
            if session is None:
                return stock
            df = self._pull(session, {"source": "sql", "code": query.query}, query, args.output)
            return None if args.quiet else df

        @cell_magic
        @needs_local_scope
        @wrap_unexpected_exceptions
        @handle_expected_exceptions
        def spark(self, line: str, cell: str = "", local_ns: Any = None) -> Any:
            args = parse_argstring_or_throw(self.km.spark, line)
            if args.output is None:
                return self.km.spark(line, cell, local_ns)
            store = SparkStoreCommand(args.output, args.samplemethod, args.maxrows,
                                      args.samplefraction)
            session, stock = self._labwork_session(self.km.spark, line, cell, local_ns)
            if session is None:
                return stock
            self.km.execute_spark(cell, None, None, None, None, None, None)
            kind = "spark" if session.kind == "spark" else "pyspark"
            self._pull(session, {"source": "variable", "code": args.output, "kind": kind}, store,
                       args.output)
            return None

        @cell_magic
        @needs_local_scope
        @wrap_unexpected_exceptions
        @handle_expected_exceptions
        def send_to_spark(self, line: str, cell: str = "", local_ns: Any = None) -> Any:
            args = parse_argstring_or_throw(self.km.send_to_spark, line)
            if (args.vartype or "str").lower() != "df":
                return self.km.send_to_spark(line, cell, local_ns)
            if cell.strip():
                raise BadUserDataException("Cell body for %%send_to_spark magic must be empty; "
                                           f"got '{cell.strip()}' instead")
            if not args.input:
                raise BadUserDataException("-i param not provided.")
            session, stock = self._labwork_session(self.km.send_to_spark, line, cell, local_ns)
            if session is None:
                return stock
            import pandas as pd
            value = self.shell.user_ns.get(args.input)
            if value is None:
                raise BadUserDataException(f"Variable named {args.input} not found.")
            if not isinstance(value, pd.DataFrame):
                raise BadUserDataException(f"{args.input} is not a Pandas DataFrame! Got "
                                           f"{type(value)} instead.")
            name = args.varname or args.input
            send(session, value, name, args.maxrows if args.maxrows is not None else 2500)
            self.ipython_display.write(f"Successfully passed '{args.input}' as '{name}' to "
                                       "Spark kernel")
            return None

    return ArrowMagics


def register(shell: Any, url: str | None = None, auth: Any = None,
             headers: dict | None = None) -> bool:
    """Register the Arrow magics over sparkmagic's in `shell` when `url` (the kernel's Livy
    endpoint) is labwork's gateway; False (stock sparkmagic left alone) otherwise."""
    km = shell.magics_manager.registry.get("KernelMagics")
    if km is None or (url is not None and not endpoint_is_labwork(url, auth, headers)):
        return False
    shell.register_magics(_arrow_magics_class()(shell, km))
    return True


def install() -> None:
    """In labwork's sparkmagic kernel launcher, before the kernel starts: once sparkmagic has
    loaded its magics, register ours if the configured endpoint is labwork's gateway."""
    from sparkmagic.kernels.wrapperkernel.sparkkernelbase import SparkKernelBase
    load_magics = SparkKernelBase._load_magics_extension

    def load_magics_extension(self: Any) -> None:
        load_magics(self)
        try:
            url, auth, headers = _configured_endpoint(self.language)
            if register(self.shell, url, auth, headers):
                log.info("Arrow results on: %s is labwork's gateway", url)
        except Exception:  # noqa: BLE001 - stock sparkmagic still works
            log.exception("registering labwork's Arrow magics failed")

    SparkKernelBase._load_magics_extension = load_magics_extension

    from sparkmagic.livyclientlib.sparkcontroller import SparkController
    make_session = SparkController._livy_session

    def livy_session(*args: Any, **kwargs: Any) -> Any:
        session = make_session(*args, **kwargs)
        try:
            configure_polling(session)  # one poller, sparkmagic's, started shorter for ours
        except Exception:  # noqa: BLE001 - sparkmagic's own schedule still works
            log.exception("configuring the statement poll schedule failed")
        return session

    SparkController._livy_session = staticmethod(livy_session)


def _configured_endpoint(language: str) -> tuple[str, Any, dict]:
    """The Livy URL, auth and custom headers sparkmagic's config gives this kernel's language."""
    import sparkmagic.utils.configuration as conf
    from sparkmagic.utils.utils import Namespace, initialize_auth
    creds = getattr(conf, f"base64_kernel_{language}_credentials")()
    auth = initialize_auth(Namespace(auth=creds["auth"], user=creds["username"],
                                     password=creds["password"], url=creds["url"]))
    return creds["url"], auth, dict(conf.custom_headers())
