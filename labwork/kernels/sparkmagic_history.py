"""Run history inside labwork's sparkmagic kernels: the user's cell, one run per kernel.

The gateway only sees the code sparkmagic generates (`%%sql SELECT ...` arrives as
`for x in spark.sql(...).toJSON(): ...`, plus the statements of a session start), so the kernel
records the cells itself, the way the IPython extension does in the other labwork kernels:

* `do_execute` of the sparkmagic kernel is wrapped: each user cell (the text the user wrote) is
  one entry of the kernel's run, when history is on;
* the Livy statements the cell ran are watched through sparkmagic's HTTP client
  (`get_statement`): a statement that ended in error makes the cell an error with its
  `ename`/`evalue`/traceback, a cancelled one makes it interrupted; an error sparkmagic only
  displays (a session that did not start) makes it an error too;
* `%labwork` is registered in the kernel's IPython shell (without the cell hooks, which would see
  sparkmagic's rewritten cells), so `%%local` + `%labwork status|history on|off|show` works;
* the session's Spark conf carries `spark.labwork.run` (this kernel's run) and
  `spark.labwork.recorder = kernel`, so the gateway does not record the statements a second time
  and ends this run when the session ends.
"""
from __future__ import annotations

from typing import Any

from labwork.history.delivery import log
from labwork.history.recorder import Recorder


class CellTrace:
    """What one user cell's Livy statements and sparkmagic's messages said."""

    def __init__(self) -> None:
        self.statements: dict[Any, dict[str, Any]] = {}
        self.shown_error: str | None = None

    def outcome(self, reply: dict[str, Any] | None) -> tuple[str, str | None, str | None, str | None]:
        """(status, error name, error value, traceback) of the cell."""
        for st in self.statements.values():
            out = st.get("output") or {}
            if out.get("status") == "error":
                tb = out.get("traceback")
                tb = "".join(str(x) for x in tb) if isinstance(tb, list) else tb
                return "error", str(out.get("ename") or "Error"), str(out.get("evalue") or ""), tb
        if any(str(st.get("state")) in ("cancelled", "cancelling") for st in self.statements.values()):
            return "interrupted", "KeyboardInterrupt", "the Spark statement was cancelled", None
        if self.shown_error:
            return "error", "SparkmagicError", self.shown_error[:2000], None
        if reply and reply.get("status") == "error":
            return ("error", str(reply.get("ename") or "Error"), str(reply.get("evalue") or ""),
                    "\n".join(reply.get("traceback") or []) or None)
        if reply and reply.get("status") == "aborted":
            return "interrupted", "KeyboardInterrupt", "", None
        return "ok", None, None, None


_current: CellTrace | None = None


def install(rec: Recorder) -> None:
    """Patch sparkmagic's kernel class, HTTP client and display (this process only), before the
    kernel starts."""
    from hdijupyterutils.ipythondisplay import IpythonDisplay
    from sparkmagic.kernels.wrapperkernel.sparkkernelbase import SparkKernelBase
    from sparkmagic.livyclientlib.livyreliablehttpclient import LivyReliableHttpClient

    from labwork.history.magics import register_magic_only

    run_cell = SparkKernelBase.do_execute
    load_magics = SparkKernelBase._load_magics_extension
    get_statement = LivyReliableHttpClient.get_statement
    send_error = IpythonDisplay.send_error

    def do_execute(self: Any, code: str, silent: bool, store_history: bool = True,
                   user_expressions: Any = None, allow_stdin: bool = False) -> Any:
        global _current
        if silent or not (code or "").strip():
            return run_cell(self, code, silent, store_history, user_expressions, allow_stdin)
        trace = CellTrace()
        frame = rec.begin_cell(code)
        _current = trace
        reply = None
        try:
            reply = run_cell(self, code, silent, store_history, user_expressions, allow_stdin)
            return reply
        finally:
            _current = None
            try:
                status, ename, evalue, tb = trace.outcome(reply if isinstance(reply, dict) else None)
                rec.end_cell(frame, status=status, error_name=ename, error_value=evalue, traceback=tb,
                             execution_count=reply.get("execution_count") if isinstance(reply, dict) else None)
            except Exception:
                log.exception("recording a sparkmagic cell failed")

    def load_magics_extension(self: Any) -> None:
        load_magics(self)
        try:
            register_magic_only(self.shell)
        except Exception:
            log.exception("registering %%labwork in the sparkmagic kernel failed")

    def watched_get_statement(self: Any, session_id: Any, statement_id: Any) -> Any:
        statement = get_statement(self, session_id, statement_id)
        trace = _current
        if trace is not None and isinstance(statement, dict):
            trace.statements[statement_id] = statement
        return statement

    def watched_send_error(self: Any, error: Any) -> None:
        trace = _current
        if trace is not None and trace.shown_error is None:
            trace.shown_error = str(error)
        send_error(self, error)

    SparkKernelBase.do_execute = do_execute
    SparkKernelBase._load_magics_extension = load_magics_extension
    LivyReliableHttpClient.get_statement = watched_get_statement
    IpythonDisplay.send_error = watched_send_error

