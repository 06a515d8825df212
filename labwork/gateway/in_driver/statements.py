"""One Livy statement inside the driver: Python, SQL or Scala, with Livy's output semantics.

The last expression's repr, then stdout, then stderr, right-stripped (Python); errors as ename /
evalue / traceback lines without our own frames; `%json`, `%table` and `%matplot`; every output
bounded by the gateway's `max_output_bytes`. A cancel (SIGINT from the gateway) stops the
statement's Spark jobs and interrupts its Python code.
"""
from __future__ import annotations

import ast
import base64
import io
import json
import os
import signal
import sys
import threading
import traceback
from typing import Any

from labwork.gateway.in_driver import arrow_results, scala_repl
from labwork.gateway.in_driver.state import STATE, encode, user_ns
from labwork.gateway.in_driver.values import jsonable, sanitize, table

_OURS = os.path.dirname(os.path.abspath(__file__))  # frames from this package leave tracebacks


class _UnknownMagic(Exception):
    pass


def run(statement_id: int, kind: str, code_b64: str) -> None:
    """Run one statement; the Livy output is left for `reply()`."""
    STATE.reply = None
    try:
        code = base64.b64decode(code_b64).decode("utf-8")
        result = execute(statement_id, kind, code)
        STATE.reply = encode(result)
    except BaseException as exc:  # noqa: BLE001
        STATE.reply = encode(_error(type(exc), exc, None, statement_id))


def execute(statement_id: int, kind: str, code: str) -> dict:
    """Run one statement and return its Livy output (or `{"status": "cancelled"}`)."""
    result: dict[str, Any]
    STATE.current = statement_id
    STATE.interrupted = False
    saved_sigint = None
    try:
        try:
            saved_sigint = signal.signal(signal.SIGINT, _on_sigint)
        except ValueError:  # not the main thread
            saved_sigint = None
        result = _run(statement_id, kind, code)
    except KeyboardInterrupt:
        result = {"status": "cancelled"}
    except BaseException as exc:  # noqa: BLE001 - anything else is the statement's error
        result = _error(type(exc), exc, exc.__traceback__, statement_id)
    finally:
        STATE.current = None
        if saved_sigint is not None:
            try:
                signal.signal(signal.SIGINT, saved_sigint)
            except Exception:
                pass
    if STATE.interrupted and result.get("status") == "error":
        result = {"status": "cancelled"}
    try:
        result = sanitize(result)
        size = len(json.dumps(result, ensure_ascii=False, allow_nan=False).encode("utf-8"))
    except Exception as exc:  # not JSON-serialisable after all
        result = _error(type(exc), exc, None, statement_id)
        size = 0
    if size > _max_output():
        result = _too_large(statement_id, size)
    return result


def _max_output() -> int:
    return STATE.max_output


def _too_large(statement_id: int, size: int) -> dict:
    """What Livy's rpc.max.size becomes here: an error that says how large and what the cap is."""
    cap = _max_output()
    return {"status": "error", "execution_count": statement_id, "ename": "OutputTooLarge",
            "evalue": f"the statement's output is {_mib(size)} ({size} bytes), more than the "
                      f"gateway's limit of {_mib(cap)} ({cap} bytes; gateway.max_output_bytes)",
            "traceback": []}


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


class _Capture(io.StringIO):
    """stdout/stderr of a statement, kept only up to the output cap (the rest is counted)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit, self.size = limit, 0

    def write(self, text: str) -> int:
        n = len(text)
        self.size += n
        if self.size <= self.limit:
            return super().write(text)
        return n


def _in_py4j(frame) -> bool:
    while frame is not None:
        name = frame.f_code.co_filename
        if "/py4j/" in name or name.endswith("pyspark/errors/exceptions/captured.py"):
            return True
        frame = frame.f_back
    return False


def _on_sigint(signum, frame) -> None:
    """Cancel: stop the Spark jobs (from another thread, on its own py4j connection), and raise
    KeyboardInterrupt in the user's code unless the main thread is inside a py4j call (breaking
    that would leave its connection unusable): the cancelled job makes that call fail at once,
    and the gateway signals again if the statement still runs."""
    STATE.interrupted = True
    group = STATE.current
    threading.Thread(target=_cancel_jobs, args=(group,), daemon=True).start()
    if not _in_py4j(frame):
        raise KeyboardInterrupt


def _cancel_jobs(group) -> None:
    sc = STATE.sc
    if sc is None:
        return
    try:
        if group is not None:
            sc.cancelJobGroup(str(group))
        else:
            sc.cancelAllJobs()
    except Exception:
        pass


def _run(statement_id: int, kind: str, code: str) -> dict:
    sc = STATE.sc
    group = str(statement_id)
    if sc is not None:
        try:
            sc.setJobGroup(group, f"livy statement {statement_id}", True)
        except Exception:
            pass
    out, err = _Capture(_max_output()), _Capture(_max_output())
    saved = sys.stdout, sys.stderr, sys.displayhook
    sys.stdout, sys.stderr, sys.displayhook = out, err, sys.__displayhook__
    result: dict | None = None
    try:
        if kind == "pyspark":
            result = _run_python(code)
        elif kind == "sql":
            result = _run_sql(code)
        elif kind == "spark":
            result = scala_repl.run(code)
        elif kind == "arrow":  # the gateway's own: a result staged for its Arrow endpoint
            result = arrow_results.run(statement_id, code)
        else:
            raise ValueError(f"unsupported statement kind '{kind}'")
    except KeyboardInterrupt:
        raise
    except scala_repl.Incomplete:
        return {"status": "error", "execution_count": statement_id, "ename": "Error",
                "evalue": "incomplete statement", "traceback": []}
    except arrow_results.ArrowRequestError as exc:
        return {"status": "error", "execution_count": statement_id, "ename": exc.ename,
                "evalue": exc.evalue, "traceback": []}
    except scala_repl.ScalaError as exc:
        return {"status": "error", "execution_count": statement_id, "ename": exc.ename,
                "evalue": exc.evalue, "traceback": exc.traceback}
    except BaseException as exc:  # noqa: BLE001
        return _error(type(exc), exc, exc.__traceback__, statement_id)
    finally:
        sys.stdout, sys.stderr, sys.displayhook = saved
    if out.size + err.size > _max_output():
        return _too_large(statement_id, out.size + err.size)
    data = dict(result or {})
    text = data.pop("text/plain", "") or ""
    text += out.getvalue() + err.getvalue()
    if kind != "spark":  # Livy right-strips Python output only; Scala's is the REPL's, raw
        text = text.rstrip()
    if text or not data:
        data["text/plain"] = text
    return {"status": "ok", "execution_count": statement_id, "data": data}


def _error(etype: type, value: BaseException, tb, statement_id: int | None = None) -> dict:
    while tb is not None and os.path.dirname(tb.tb_frame.f_code.co_filename) == _OURS:
        tb = tb.tb_next
    if isinstance(value, SyntaxError):
        parts = traceback.format_exception_only(etype, value)
    else:
        parts = traceback.format_exception(etype, value, tb, chain=False)
    lines = "".join(parts).splitlines(keepends=True)
    lines = [ln if ln.endswith("\n") else ln + "\n" for ln in lines]
    return {"status": "error", "execution_count": statement_id, "ename": etype.__name__,
            "evalue": str(value), "traceback": lines}


# Python: exactly Livy's fake_shell parsing (magic lines split out only if the whole fails).
def _parse(code: str) -> list[tuple[str, Any]]:
    try:
        return [("code", compile(code, "<stdin>", "exec", ast.PyCF_ONLY_AST, True))]
    except SyntaxError:
        chunks: list[str] = []
        normal: list[str] = []
        for line in code.rstrip().split("\n"):
            if line.startswith("%"):
                if normal:
                    chunks.append("\n".join(normal))
                    normal = []
                chunks.append(line)
            else:
                normal.append(line)
        if normal:
            chunks.append("\n".join(normal))
        nodes: list[tuple[str, Any]] = []
        for chunk in chunks:
            if chunk.startswith("%"):
                nodes.append(("magic", chunk))
            else:
                nodes.append(("code", compile(chunk, "<stdin>", "exec", ast.PyCF_ONLY_AST, True)))
        return nodes


def _run_python(code: str) -> dict | None:
    ns = user_ns()
    result = None
    for what, node in _parse(code):
        if what == "magic":
            result = _magic(node, ns)
            continue
        result = None
        body = node.body
        if len(body) > 1:
            exec(compile(ast.Module(body[:-1], []), "<stdin>", "exec"), ns)
        if body:
            exec(compile(ast.Interactive(body[-1:]), "<stdin>", "single"), ns)
    return result


def _magic(line: str, ns: dict) -> dict:
    words = line[1:].split(None, 1)
    name = words[0] if words else ""
    arg = words[1].strip() if len(words) > 1 else ""
    if name == "json":
        value = ns[arg]
        json.dumps(sanitize(value), allow_nan=False)  # fails here if not serialisable
        return {"application/json": value}
    if name == "table":
        return table(ns[arg])
    if name == "matplot":
        plt = ns[arg]
        fig = plt.gcf()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"), "text/plain": ""}
    raise _UnknownMagic(f"unknown magic command '%{name}'")



def _run_sql(code: str) -> dict:
    spark = STATE.spark
    df = spark.sql(code)
    schema = json.loads(df.schema.json())
    rows = df.take(STATE.max_rows)
    return {"application/json": {"schema": schema,
                                 "data": [[jsonable(v) for v in row] for row in rows]}}
