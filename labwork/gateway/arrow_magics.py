"""`%%sql -o`, `%%spark -o` and `%%send_to_spark` at Arrow speed in labwork's sparkmagic kernels.

sparkmagic moves results as one JSON text per row and guesses dtypes on arrival; it stops at
`-n` rows without saying so and pastes `%%send_to_spark` frames into a quoted literal. Against
labwork's gateway (it answers `"labwork": {"arrow": 1}` in `GET /version`), this module registers
magics of the same names in the kernel's IPython (its magic registry is the seam; sparkmagic is not
forked) that keep sparkmagic's flags, parsers, session handling, progress bar, cancel and
auto-visualization, but move the rows as an Arrow IPC stream through the gateway's
`/sessions/{id}/arrow` endpoints: the frame is the driver's `toPandas()` (Spark's Arrow path),
dtypes included, and a cut result says "showing 2,500 of 1,234,567 rows (-n to change)".
Against any other Livy nothing is registered (or, if the endpoint changes later, the stock magic
runs), so sparkmagic's own path is unchanged.

What it relies on in sparkmagic 0.23 (pinned in tests/kernels/test_sparkmagic_arrow.py):
`KernelMagics` in the shell's magics registry with `sql`/`spark`/`send_to_spark` (their argument
parsers), `_do_not_call_start_session`, `execute_spark`, `spark_controller.
get_session_by_name_or_default`, `ipython_display`, `logger`; `FINAL_STATEMENT_STATUS`;
`LivySession.http_client._http_client` (a `ReliableHttpClient`: `post`, `compose_url`,
`_session`, `_headers`, `_auth`, `verify_ssl`); `SQLQuery`/`SparkStoreCommand` argument checks.
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
    """POST an arrow request, then wait for its statement as sparkmagic waits for any (progress
    bar, cancel on interrupt); returns the statement's JSON output (or raises with its error)."""
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
        output = _wait(session, sid)
    except KeyboardInterrupt:
        session.http_client.cancel_statement(session.id, sid)
        session.wait_for_idle()
        raise SparkStatementCancelledException(COMMAND_INTERRUPTED_MSG) from None
    if output is None:
        raise SparkStatementCancelledException(COMMAND_INTERRUPTED_MSG)
    if output.get("status") != "ok":
        raise BadUserDataException(f"{output.get('ename')}: {output.get('evalue')}")
    return sid, (output.get("data") or {}).get("application/json") or {}


def _wait(session: Any, sid: int) -> dict | None:
    """The statement's output once it is final, polled as sparkmagic polls (its HTTP client,
    its progress bar) but on a short schedule: these statements take well under a second when
    small, and sparkmagic's own 0.2 s -> 0.5 s -> 1 s steps would dominate them."""
    import time

    from ipywidgets.widgets import FloatProgress, Layout
    from sparkmagic.utils.constants import FINAL_STATEMENT_STATUS
    progress = None
    started, delay = time.monotonic(), 0.005
    try:
        while True:
            statement = session.http_client.get_statement(session.id, sid)
            if statement["state"].lower() in FINAL_STATEMENT_STATUS:
                return statement.get("output")
            if progress is None and time.monotonic() - started > 1.0:
                progress = FloatProgress(value=0.0, min=0, max=1.0, step=0.01,
                                         description="Progress:", bar_style="info",
                                         orientation="horizontal",
                                         layout=Layout(width="50%", height="25px"))
                session.ipython_display.display(progress)
            if progress is not None:
                progress.value = statement.get("progress", 0.0)
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
    finally:
        if progress is not None:
            progress.close()


def fetch(session: Any, request: dict) -> tuple[Any, dict]:
    """(pandas DataFrame, summary) of a SQL query or a named DataFrame, as Arrow."""
    import pyarrow as pa
    from sparkmagic.livyclientlib.exceptions import BadUserDataException, HttpClientException
    sid, summary = _statement(session, "arrow", request)
    rc = _http(session)
    url = rc.compose_url(f"/sessions/{session.id}/statements/{sid}/arrow")
    try:
        with rc._session.get(url, headers=_plain_headers(rc), auth=rc._auth,
                             verify=rc.verify_ssl, stream=True) as r:
            if r.status_code != 200:
                raise HttpClientException(f"Invalid status code '{r.status_code}' from {url} "
                                          f"with error payload: {r.text}")
            r.raw.decode_content = True
            # read in large chunks into one buffer the table's columns then point into (no copy)
            sink = pa.BufferOutputStream()
            for chunk in r.iter_content(chunk_size=1 << 20):
                sink.write(chunk)
            table = pa.ipc.open_stream(sink.getvalue()).read_all()
        return to_pandas(table), summary
    except (pa.ArrowException, OSError) as exc:
        raise BadUserDataException(f"the result's Arrow stream broke off ({exc}); run the cell "
                                   "again") from exc


def to_pandas(table: Any) -> Any:
    """The frame the driver's `toPandas()` made, from its Arrow table (pandas' metadata keeps
    the dtypes)."""
    return table.to_pandas()


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

        def _session(self) -> Any:
            return self.km.spark_controller.get_session_by_name_or_default(None)

        def _show(self, summary: dict) -> None:
            message = rows_message(summary)
            if message:
                self.ipython_display.write(message + "\n")

        @cell_magic
        @needs_local_scope
        @wrap_unexpected_exceptions
        @handle_expected_exceptions
        def sql(self, line: str, cell: str = "", local_ns: Any = None) -> Any:
            if not self.km._do_not_call_start_session(""):
                return None
            session = self._session()
            if not session_is_labwork(session):
                return self.km.sql(line, cell, local_ns)
            args = parse_argstring_or_throw(self.km.sql, line)
            q = SQLQuery(cell, args.samplemethod, args.maxrows, args.samplefraction)  # its checks
            df, summary = fetch(session, {"source": "sql", "code": q.query, "maxrows": q.maxrows,
                                          "samplemethod": q.samplemethod,
                                          "samplefraction": q.samplefraction})
            self._show(summary)
            if args.output is not None:
                self.shell.user_ns[args.output] = df
            return None if args.quiet else df

        @cell_magic
        @needs_local_scope
        @wrap_unexpected_exceptions
        @handle_expected_exceptions
        def spark(self, line: str, cell: str = "", local_ns: Any = None) -> Any:
            args = parse_argstring_or_throw(self.km.spark, line)
            if args.output is None:
                return self.km.spark(line, cell, local_ns)
            if not self.km._do_not_call_start_session(""):
                return None
            session = self._session()
            if not session_is_labwork(session):
                return self.km.spark(line, cell, local_ns)
            store = SparkStoreCommand(args.output, args.samplemethod, args.maxrows,
                                      args.samplefraction)  # sparkmagic's own checks
            self.km.execute_spark(cell, None, None, None, None, None, None)
            df, summary = fetch(session, {
                "source": "variable", "code": args.output,
                "kind": "spark" if session.kind == "spark" else "pyspark",
                "maxrows": store.maxrows, "samplemethod": store.samplemethod,
                "samplefraction": store.samplefraction})
            self._show(summary)
            self.shell.user_ns[args.output] = df
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
            if not self.km._do_not_call_start_session(""):
                return None
            session = self._session()
            if not session_is_labwork(session):
                return self.km.send_to_spark(line, cell, local_ns)
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


def _configured_endpoint(language: str) -> tuple[str, Any, dict]:
    """The Livy URL, auth and custom headers sparkmagic's config gives this kernel's language."""
    import sparkmagic.utils.configuration as conf
    from sparkmagic.utils.utils import Namespace, initialize_auth
    creds = getattr(conf, f"base64_kernel_{language}_credentials")()
    auth = initialize_auth(Namespace(auth=creds["auth"], user=creds["username"],
                                     password=creds["password"], url=creds["url"]))
    return creds["url"], auth, dict(conf.custom_headers())
