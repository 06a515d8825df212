"""Runs inside every session's Spark driver (an IPython kernel started by the gateway).

Start-up is one execute request, `__lw.boot(...)`, whose result comes back in the reply's
`user_expressions` (`__lw.reply()`). `boot` then registers a shell message type of our own,
`labwork_run_request`: each statement is one such message, run without IPython's cell machinery
and answered with its Livy output, so only the reliable shell channel is on the hot path
(`run(id, kind, code_b64)` does the same through a plain execute request, for debugging). This
module gives the statement Livy's semantics exactly:
the last expression's repr, then stdout, then stderr, right-stripped; errors as ename / evalue /
traceback lines; `%json`, `%table` and `%matplot` magics; `sql` and `spark` (Scala) kinds.

A small side channel (a TCP socket on 127.0.0.1 with a per-session secret, served by a daemon
thread) lets the gateway cancel a statement's Spark jobs and read their progress while the main
thread is busy running the statement.
"""
from __future__ import annotations

import ast
import base64
import builtins
import datetime
import decimal
import io
import json
import math
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
import warnings
from typing import Any

_S: dict[str, Any] = {"reply": None, "current": None}
_THIS = __file__.rstrip("c")


# -- result passing ---------------------------------------------------------------------------
def _encode(obj: Any) -> str:
    return base64.b64encode(json.dumps(obj, ensure_ascii=False, allow_nan=False,
                                       default=str).encode("utf-8")).decode("ascii")


def reply() -> str:
    """Evaluated as a user expression right after `run` / `boot`: the encoded result."""
    out, _S["reply"] = _S["reply"], None
    return out or ""


def _ns() -> dict:
    ip = _ipython()
    return ip.user_ns if ip is not None else globals().setdefault("_user_ns", {})


def _ipython():
    try:
        return get_ipython()  # type: ignore[name-defined]  # noqa: F821
    except NameError:
        try:
            from IPython import get_ipython as g
            return g()
        except Exception:
            return None


# -- start-up ---------------------------------------------------------------------------------
def boot(payload: str) -> None:
    """Create the SparkSession from the gateway's settings and publish `spark`, `sc`, `sqlContext`."""
    try:
        cfg = json.loads(base64.b64decode(payload))
        _S["cfg"] = cfg
        _S["gateway_pid"] = cfg.get("gateway_pid")
        _S["max_rows"] = int(cfg.get("sql_max_rows", 1000))
        _S["max_output"] = int(cfg.get("max_output_bytes", 50 * 1024 * 1024))
        from pyspark.sql import SparkSession
        builder = SparkSession.builder
        for key, value in cfg.get("conf", {}).items():
            builder = builder.config(key, str(value))
        spark = builder.getOrCreate()
        sc = spark.sparkContext
        ns = _ns()
        ns["spark"], ns["sc"] = spark, sc
        try:
            from pyspark.sql import SQLContext
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ns["sqlContext"] = SQLContext(sc, spark)
        except Exception:  # pragma: no cover - removed in some future Spark
            pass
        _S["spark"], _S["sc"] = spark, sc
        _route_warnings()
        port = _start_side_channel(cfg.get("secret", ""))
        threading.Thread(target=_watchdog, name="labwork-watchdog", daemon=True).start()
        _install_handler()
        _S["reply"] = _encode({"ok": True, **_info(), "side_port": port, "pid": os.getpid()})
    except BaseException as exc:  # noqa: BLE001 - reported to the gateway, which marks the session
        _S["reply"] = _encode({"ok": False, "error": f"{type(exc).__name__}: {exc}",
                               "traceback": traceback.format_exc()})


def _route_warnings() -> None:
    """Python warnings (pyspark 4 warns on `DataFrame.toJSON`, which both Livy clients call) go to
    the session log, never into a statement's output: clients parse that output line by line."""
    real = sys.__stderr__

    def showwarning(message, category, filename, lineno, file=None, line=None):
        try:
            real.write(warnings.formatwarning(message, category, filename, lineno, line))
            real.flush()
        except Exception:
            pass

    warnings.showwarning = showwarning


def _info() -> dict:
    sc = _S.get("sc")
    if sc is None:
        return {}
    try:
        ui = sc.uiWebUrl
    except Exception:
        ui = None
    return {"appId": sc.applicationId, "sparkUiUrl": ui, "master": sc.master,
            "sparkVersion": sc.version}


def _install_handler() -> None:
    """A shell message type of our own, `labwork_run_request`, that runs a statement without
    IPython's cell machinery (transformers, history, display hooks): the statement's hot path."""
    ip = _ipython()
    kernel = getattr(ip, "kernel", None)
    if kernel is None:
        return

    def handler(stream, idents, msg):
        content = msg.get("content", {})
        op = content.get("op", "run")
        if op == "run":
            out = execute(int(content["id"]), content.get("kind", "pyspark"), content["code"])
        elif op == "complete":
            try:
                out = {"candidates": complete_scala(content["code"], int(content["cursor"]))}
            except Exception as exc:  # noqa: BLE001 - no candidates rather than an error
                out = {"candidates": [], "error": f"{type(exc).__name__}: {exc}"}
        elif op == "info":
            out = {"ok": "sc" in _S, **_info(), "pid": os.getpid(), "side_port": _S.get("side_port")}
        else:
            out = {"status": "error", "ename": "ValueError", "evalue": f"unknown op {op!r}",
                   "traceback": []}
        kernel.session.send(stream, "labwork_run_reply", {"result": out}, parent=msg, ident=idents)

    kernel.shell_handlers["labwork_run_request"] = handler
    _S["fast_path"] = True


def info() -> None:
    _S["reply"] = _encode({"ok": "sc" in _S, **_info(), "pid": os.getpid(),
                           "side_port": _S.get("side_port")})


# -- statements -------------------------------------------------------------------------------
class _UnknownMagic(Exception):
    pass


class _Incomplete(Exception):
    pass


def run(statement_id: int, kind: str, code_b64: str) -> None:
    """Run one statement; the Livy output is left for `reply()` (and `_S["result"]`)."""
    _S["result"] = _S["reply"] = None
    try:
        code = base64.b64decode(code_b64).decode("utf-8")
        result = execute(statement_id, kind, code)
        _S["reply"] = _encode(result)
    except BaseException as exc:  # noqa: BLE001
        _S["reply"] = _encode(_error(type(exc), exc, None, statement_id))


def execute(statement_id: int, kind: str, code: str) -> dict:
    """Run one statement and return its Livy output (or `{"status": "cancelled"}`)."""
    result: dict[str, Any]
    _S["current"] = statement_id
    _S["interrupted"] = False
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
        _S["current"] = None
        if saved_sigint is not None:
            try:
                signal.signal(signal.SIGINT, saved_sigint)
            except Exception:
                pass
    if _S.get("interrupted") and result.get("status") == "error":
        result = {"status": "cancelled"}
    try:
        result = _sanitize(result)
        size = len(json.dumps(result, ensure_ascii=False, allow_nan=False).encode("utf-8"))
    except Exception as exc:  # not JSON-serialisable after all
        result = _error(type(exc), exc, None, statement_id)
        size = 0
    if size > _max_output():
        result = _too_large(statement_id, size)
    return result


def _max_output() -> int:
    return int(_S.get("max_output") or 50 * 1024 * 1024)


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
    _S["interrupted"] = True
    group = _S.get("current")
    threading.Thread(target=_cancel_jobs, args=(group,), daemon=True).start()
    if not _in_py4j(frame):
        raise KeyboardInterrupt


def _cancel_jobs(group) -> None:
    sc = _S.get("sc")
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
    sc = _S.get("sc")
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
            result = _run_scala(code)
        else:
            raise ValueError(f"unsupported statement kind '{kind}'")
    except KeyboardInterrupt:
        raise
    except _Incomplete:
        return {"status": "error", "execution_count": statement_id, "ename": "Error",
                "evalue": "incomplete statement", "traceback": []}
    except _ScalaError as exc:
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
    while tb is not None and tb.tb_frame.f_code.co_filename in (__file__, _THIS):
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
    ns = _ns()
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
    parts = line[1:].split(None, 1)
    name = parts[0] if parts else ""
    arg = parts[1].strip() if len(parts) > 1 else ""
    if name == "json":
        value = ns[arg]
        json.dumps(_sanitize(value), allow_nan=False)  # fails here if not serialisable
        return {"application/json": value}
    if name == "table":
        return _table(ns[arg])
    if name == "matplot":
        plt = ns[arg]
        fig = plt.gcf()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"), "text/plain": ""}
    raise _UnknownMagic(f"unknown magic command '%{name}'")


def _convert(value: Any) -> tuple[str, Any]:
    if value is None:
        return "NULL_TYPE", None
    if isinstance(value, bool):
        return "BOOLEAN_TYPE", value
    if isinstance(value, int):
        return ("INT_TYPE" if -2**31 <= value < 2**31 else "BIGINT_TYPE"), value
    if isinstance(value, float):
        return "DOUBLE_TYPE", value
    if isinstance(value, datetime.datetime):
        return "TIMESTAMP_TYPE", str(value)
    if isinstance(value, datetime.date):
        return "DATE_TYPE", str(value)
    if isinstance(value, decimal.Decimal):
        return "DECIMAL_TYPE", str(value)
    if isinstance(value, (list, tuple)):
        kind, items = None, []
        for item in value:
            t, v = _convert(item)
            if kind is None:
                kind = t
            elif kind != t:
                raise ValueError("value has different types")
            items.append(v)
        return "ARRAY_TYPE", items
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out[str(_convert(k)[1])] = _convert(v)[1]
        return "MAP_TYPE", out
    return "STRING_TYPE", str(value)


def _table(value: Any) -> dict:
    if not isinstance(value, (list, tuple)):
        value = [value]
    headers: dict[Any, dict] = {}
    data = []
    for row in value:
        cols: list = []
        data.append(cols)
        if type(row).__name__ == "Row":
            row = row.asDict()
        if not isinstance(row, (list, tuple, dict)):
            row = [row]
        items = enumerate(row) if isinstance(row, (list, tuple)) else sorted(row.items())
        for name, col in items:
            col_type, col = _convert(col)
            header = headers.get(name)
            if header is None:
                headers[name] = {"name": str(name), "type": col_type}
            elif col_type != "NULL_TYPE" and header["type"] != col_type:
                if header["type"] == "NULL_TYPE":
                    header["type"] = col_type
                else:
                    raise TypeError("table rows have different types")
            cols.append(col)
    return {"application/vnd.livy.table.v1+json": {
        "headers": [v for _, v in sorted(headers.items(), key=lambda kv: str(kv[0]))],
        "data": data}}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if type(value).__name__ == "Row":
        return {k: _jsonable(v) for k, v in value.asDict().items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    return str(value)


def _sanitize(value: Any) -> Any:
    """NaN/inf become null so every answer is strict JSON."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {k: _sanitize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_sanitize(v) for v in value]
    return value


def _run_sql(code: str) -> dict:
    spark = _S["spark"]
    df = spark.sql(code)
    schema = json.loads(df.schema.json())
    rows = df.take(_S.get("max_rows", 1000))
    return {"application/json": {"schema": schema,
                                 "data": [[_jsonable(v) for v in row] for row in rows]}}


# -- Scala (the REPL classes in pyspark's jars, in this driver's JVM) --------------------------
# What Livy's Scala interpreter does at start-up, so `col`, `lit`, `trim`, `sql(...)` and `$"x"`
# work as they do there.
_SCALA_IMPORTS = ("import org.apache.spark.SparkContext._", "import spark.implicits._",
                  "import spark.sql", "import org.apache.spark.sql.functions._")
_MAGIC = re.compile(r"^%(\w+)\W*(.*)")
_CARET = re.compile(r"^\s*\^\s*$")
_WARNING = re.compile(r"^(\s*)warning: ")


def _scala():
    """The Scala REPL (IMain) in this driver's JVM, sharing its SparkSession; made on first use."""
    interp = _S.get("scala")
    if interp is not None:
        return interp
    sc = _S["sc"]
    jvm = sc._jvm
    outdir = sc.getConf().get("spark.repl.class.outputDir", None)
    if not outdir:
        raise RuntimeError("this session was not started with Scala support "
                           "(create it with kind 'spark' or 'shared')")
    settings = jvm.scala.tools.nsc.Settings()
    args = jvm.java.util.ArrayList()
    for a in ["-Yrepl-class-based", "-Yrepl-outdir", outdir, "-usejavacp",
              "-classpath", jvm.java.lang.System.getProperty("java.class.path")]:
        args.add(a)
    scala_args = jvm.scala.jdk.javaapi.CollectionConverters.asScala(args).toList()
    settings.processArguments(scala_args, True)
    writer = jvm.java.io.StringWriter()
    printer = jvm.java.io.PrintWriter(writer, True)
    reporter = jvm.scala.tools.nsc.interpreter.shell.ReplReporterImpl(settings, printer)
    interp = jvm.scala.tools.nsc.interpreter.IMain(settings, reporter)
    interp.initializeCompiler()
    mods = getattr(interp, "bind$default$4")()
    interp.bind("spark", "org.apache.spark.sql.SparkSession", _S["spark"]._jsparkSession, mods)
    interp.bind("sc", "org.apache.spark.SparkContext", sc._jsc.sc(), mods)
    # What user code prints (println) goes to scala.Console.out, a DynamicVariable; point it
    # at a buffer (on the py4j thread that runs this driver's statements).
    buf = jvm.java.io.ByteArrayOutputStream()
    stream = jvm.java.io.PrintStream(buf, True, "UTF-8")
    _S.update(scala=interp, scala_writer=writer, scala_buf=buf, scala_stream=stream)
    for line in _SCALA_IMPORTS:
        interp.interpret(line)
    writer.getBuffer().setLength(0)
    return interp


def _console_to(stream) -> None:
    try:
        jvm = _S["sc"]._jvm
        console = jvm.java.lang.Class.forName("scala.Console$")
        module = console.getField("MODULE$").get(None)
        for name in ("outVar", "errVar"):
            field = console.getDeclaredField(name)
            field.setAccessible(True)
            getattr(field.get(module), "value_$eq")(stream)
    except Exception:
        pass


class _ScalaError(Exception):
    """A Scala statement's error, already in Livy's shape."""

    def __init__(self, ename: str, evalue: str, traceback_lines: list[str]) -> None:
        super().__init__(evalue)
        self.ename, self.evalue, self.traceback = ename, evalue, traceback_lines


def _run_scala(code: str) -> dict:
    """Livy's Scala semantics: the statement is interpreted line by line (a line the compiler
    finds incomplete is joined with the next), so output comes in the order the lines ran; the
    text of the lines is concatenated as the REPL printed it, newlines kept; the first error
    ends the statement; a statement that is incomplete at its end but compiles inside `{ }`
    (comments only) is a success."""
    _scala()
    lines = code.strip().split("\n")
    result: dict = {"text/plain": ""}
    i = 0
    while i < len(lines):
        head = lines[i]
        i += 1
        status, value = _scala_line(head)
        while status == "incomplete" and i < len(lines):
            head += "\n" + lines[i]
            i += 1
            status, value = _scala_line(head)
        if status == "incomplete":
            again, _ = _scala_line("{\n" + head + "\n}")
            if again == "ok":
                return result
            raise _Incomplete()
        if status == "error":
            raise value
        if "text/plain" in result and "text/plain" in value:
            last, cur = result["text/plain"], value["text/plain"]
            result = {"text/plain": last + cur} if last or cur else value
        else:
            result = value
    return result


def _scala_line(code: str) -> tuple[str, Any]:
    """One interpreter call: ("ok", data) | ("incomplete", None) | ("error", _ScalaError)."""
    m = _MAGIC.match(code)
    if m:
        try:
            return "ok", _scala_magic(m.group(1), m.group(2).strip())
        except _ScalaError as exc:
            return "error", exc
    interp = _S["scala"]
    writer, buf, stream = _S["scala_writer"], _S["scala_buf"], _S["scala_stream"]
    writer.getBuffer().setLength(0)
    buf.reset()
    _console_to(stream)
    res = interp.interpret(code)
    name = str(res.toString()) if res is not None else "Success"
    reported = str(writer.toString())
    writer.getBuffer().setLength(0)
    printed = str(buf.toString("UTF-8"))
    buf.reset()
    text = printed + _scala_echo(_scala_warnings_to_log(reported))
    if "Incomplete" in name:
        return "incomplete", None
    if "Error" in name:
        if not text.strip():  # Scala 2.13 answers a comment-only line with an empty Error
            return "incomplete", None
        return "error", _scala_error(text)
    return "ok", {"text/plain": text}


def _scala_error(text: str) -> _ScalaError:
    """Livy's shape: evalue is the first line, the traceback the lines after it. (Scala 2.13
    puts a caret line first, pointing into a prompt the client never showed: dropped.)"""
    lines = text.splitlines(keepends=True)
    while lines and (not lines[0].strip() or _CARET.match(lines[0])):
        lines.pop(0)
    if not lines:
        return _ScalaError("Error", "unknown error", [])
    rest = [ln if ln.endswith("\n") else ln + "\n" for ln in lines[1:]]
    return _ScalaError("Error", lines[0].strip(), rest)


def _scala_warnings_to_log(text: str) -> str:
    """Compiler warnings (with their caret line and continuation lines) go to the session log;
    what is left is the REPL's echo and its errors."""
    kept: list[str] = []
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        line = lines[i]
        start = i
        if _CARET.match(line) and i + 1 < len(lines) and _WARNING.match(lines[i + 1]):
            i += 1
            line = lines[i]
        m = _WARNING.match(line)
        if not m:
            kept.extend(lines[start:i + 1])
            i += 1
            continue
        indent = len(m.group(1))
        i += 1
        while i < len(lines) and lines[i].strip() and \
                len(lines[i]) - len(lines[i].lstrip()) > indent and not _WARNING.match(lines[i]):
            i += 1
        try:
            sys.__stderr__.write("".join(lines[start:i]))
            sys.__stderr__.flush()
        except Exception:
            pass
    return "".join(kept)


def _scala_echo(text: str) -> str:
    """Scala 2.13 echoes `val res0: Int = 2`; Livy's clients know `res0: Int = 2`."""
    out = []
    for line in text.splitlines(keepends=True):
        if line.startswith("val ") and ":" in line.split("=", 1)[0]:
            line = line[4:]
        out.append(line)
    return "".join(out)


def _scala_value(name: str):
    """A Scala value by name, as Livy's %json / %table read it (an RDD: its first 10 items)."""
    interp = _S["scala"]
    opt = interp.valueOfTerm(name) if name else None
    if opt is None or opt.isEmpty():
        raise _ScalaError("NameError", f"Value {name} does not exist", [])
    value = opt.get()
    jvm = _S["sc"]._jvm
    if hasattr(value, "getClass") and \
            jvm.java.lang.Class.forName("org.apache.spark.rdd.RDD").isInstance(value):
        value = value.take(10)
    return value


def _scala_json(value) -> Any:
    """The value as json4s (Livy's serializer, in Spark's jars) writes it, read back here."""
    jvm = _S["sc"]._jvm
    cls = jvm.java.lang.Class
    formats = cls.forName("org.json4s.DefaultFormats$").getField("MODULE$").get(None)
    methods = cls.forName("org.json4s.jackson.JsonMethods$").getField("MODULE$").get(None)
    return json.loads(methods.compact(jvm.org.json4s.Extraction.decompose(value, formats)))


def _scala_magic(name: str, arg: str) -> dict:
    if name == "json":
        value = _scala_value(arg)
        try:
            return {"application/json": _scala_json(value)}
        except Exception:
            raise _ScalaError("ValueError", "Failed to convert value into a JSON value", []) \
                from None
    if name == "table":
        return _scala_table(_scala_json(_scala_value(arg)))
    raise _ScalaError("UnknownMagic", f"Unknown magic command {name}", [])


class _TypesDiffer(Exception):
    pass


def _livy_type(value: Any) -> str:
    """Livy's table type of a JSON value (json4s: every integer is BIGINT_TYPE)."""
    if value is None:
        return "NULL_TYPE"
    if isinstance(value, bool):
        return "BOOLEAN_TYPE"
    if isinstance(value, str):
        return "STRING_TYPE"
    if isinstance(value, int):
        return "BIGINT_TYPE"
    if isinstance(value, float):
        return "DOUBLE_TYPE"
    items = value if isinstance(value, list) else list(value.values())
    if len({_livy_type(v) for v in items}) > 1:
        raise _TypesDiffer()
    return "ARRAY_TYPE" if isinstance(value, list) else "MAP_TYPE"


def _scala_table(value: Any) -> dict:
    rows = value if isinstance(value, list) else [value]
    headers: dict[str, dict] = {}
    data = []
    try:
        for row in rows:
            if isinstance(row, list):
                cols = [(str(n), v) for n, v in enumerate(row)]
            elif isinstance(row, dict):
                cols = list(row.items())
            else:
                cols = [("0", row)]
            for key, v in cols:
                t = _livy_type(v)
                if key in headers and headers[key]["type"] != t:
                    raise _TypesDiffer()
                headers.setdefault(key, {"type": t, "name": key})
            data.append([v for _, v in cols])
    except _TypesDiffer:
        raise _ScalaError("TypeError", "table rows have different types", []) from None
    return {"application/vnd.livy.table.v1+json": {"headers": list(headers.values()),
                                                   "data": data}}


def complete_scala(code: str, cursor: int) -> list[str]:
    """Candidates from the Scala REPL's own completer (member names, as Livy returns them)."""
    interp = _scala()
    completion_cls = _S["sc"]._jvm.scala.tools.nsc.interpreter.shell.ReplCompletion
    completer = _S.get("scala_completer")
    if completer is None:
        completer = completion_cls(interp, getattr(completion_cls,
                                                   "$lessinit$greater$default$2")())
        _S["scala_completer"] = completer
    found = completer.complete(code, cursor, True).candidates()
    out: list[str] = []
    it = found.iterator()
    while it.hasNext():
        cand = str(it.next().name())
        if cand and cand not in out:
            out.append(cand)
    return out


# -- side channel -----------------------------------------------------------------------------
def _start_side_channel(secret: str) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    port = sock.getsockname()[1]
    _S["side_port"] = port

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=_handle, args=(conn, secret), daemon=True).start()

    threading.Thread(target=serve, name="labwork-side-channel", daemon=True).start()
    return port


def _handle(conn: socket.socket, secret: str) -> None:
    with conn:
        f = conn.makefile("rwb")
        for line in f:
            try:
                req = json.loads(line)
            except ValueError:
                return
            if req.get("secret") != secret:
                return
            try:
                res = _side(req)
            except Exception as exc:  # noqa: BLE001
                res = {"error": f"{type(exc).__name__}: {exc}"}
            f.write(json.dumps(res).encode() + b"\n")
            f.flush()


def _side(req: dict) -> dict:
    op = req.get("op")
    sc = _S.get("sc")
    if op == "ping":
        return {"ok": True, "current": _S.get("current")}
    if op == "cancel":
        if sc is not None:
            sc.cancelJobGroup(str(req["group"]))
        return {"ok": True}
    if op == "progress":
        return {"progress": _progress(str(req["group"]))}
    if op == "adopt":
        _S["gateway_pid"] = req.get("pid")
        return {"ok": True}
    return {"error": f"unknown op {op!r}"}


def _progress(group: str) -> float:
    sc = _S.get("sc")
    if sc is None:
        return 0.0
    tracker = sc.statusTracker()
    total = done = 0
    for job_id in tracker.getJobIdsForGroup(group):
        job = tracker.getJobInfo(job_id)
        if job is None:
            continue
        for stage_id in job.stageIds:
            stage = tracker.getStageInfo(stage_id)
            if stage is not None:
                total += stage.numTasks
                done += stage.numCompletedTasks
    return round(done / total, 4) if total else 0.0


def _watchdog() -> None:
    """End this driver when its gateway has been gone for longer than the orphan grace."""
    grace = float(_S.get("cfg", {}).get("orphan_grace_s", 3600))
    gone_since = None
    while True:
        time.sleep(5)
        pid = _S.get("gateway_pid")
        if not pid:
            continue
        try:
            os.kill(int(pid), 0)
            gone_since = None
        except ProcessLookupError:
            gone_since = gone_since or time.monotonic()
            if time.monotonic() - gone_since > grace:
                os._exit(0)
        except OSError:
            gone_since = None


builtins.__dict__.setdefault("__labwork_livy__", True)
