"""Scala statements in a session's driver, as Livy's Scala interpreter runs them.

The Scala REPL compiler that ships in pyspark's jars (`scala-compiler`, `spark-repl`) runs in the
driver's JVM, reached through py4j and sharing the driver's SparkSession (see
shared/notes/scala-in-a-pyspark-driver.md). `run` gives a statement Livy's semantics
(`AbstractSparkInterpreter`): line by line, the REPL's raw text, Livy's start-up imports, `%json`
and `%table`, errors as ename / evalue / traceback; compiler warnings go to the driver's stderr
(the session log). Imported by `labwork.gateway.in_driver.statements` inside the driver only.
"""
from __future__ import annotations

import json
import re
import sys
from typing import Any

_R: dict[str, Any] = {}


class Incomplete(Exception):
    """The statement ends inside an unfinished construct (Livy: "incomplete statement")."""


def attach(spark) -> None:  # noqa: ANN001 - a pyspark SparkSession
    """The driver's SparkSession; the REPL itself is made on first use."""
    _R["spark"], _R["sc"] = spark, spark.sparkContext


# What Livy's Scala interpreter does at start-up, so `col`, `lit`, `trim`, `sql(...)` and `$"x"`
# work as they do there.
_SCALA_IMPORTS = ("import org.apache.spark.SparkContext._", "import spark.implicits._",
                  "import spark.sql", "import org.apache.spark.sql.functions._")
_MAGIC = re.compile(r"^%(\w+)\W*(.*)")
_CARET = re.compile(r"^\s*\^\s*$")
_WARNING = re.compile(r"^(\s*)warning: ")


def _scala():
    """The Scala REPL (IMain) in this driver's JVM, sharing its SparkSession; made on first use."""
    interp = _R.get("scala")
    if interp is not None:
        return interp
    sc = _R["sc"]
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
    interp.bind("spark", "org.apache.spark.sql.SparkSession", _R["spark"]._jsparkSession, mods)
    interp.bind("sc", "org.apache.spark.SparkContext", sc._jsc.sc(), mods)
    # What user code prints (println) goes to scala.Console.out, a DynamicVariable; point it
    # at a buffer (on the py4j thread that runs this driver's statements).
    buf = jvm.java.io.ByteArrayOutputStream()
    stream = jvm.java.io.PrintStream(buf, True, "UTF-8")
    _R.update(scala=interp, scala_writer=writer, scala_buf=buf, scala_stream=stream)
    for line in _SCALA_IMPORTS:
        interp.interpret(line)
    writer.getBuffer().setLength(0)
    return interp


def _console_to(stream) -> None:
    try:
        jvm = _R["sc"]._jvm
        console = jvm.java.lang.Class.forName("scala.Console$")
        module = console.getField("MODULE$").get(None)
        for name in ("outVar", "errVar"):
            field = console.getDeclaredField(name)
            field.setAccessible(True)
            getattr(field.get(module), "value_$eq")(stream)
    except Exception:
        pass


class ScalaError(Exception):
    """A Scala statement's error, already in Livy's shape."""

    def __init__(self, ename: str, evalue: str, traceback_lines: list[str]) -> None:
        super().__init__(evalue)
        self.ename, self.evalue, self.traceback = ename, evalue, traceback_lines


def run(code: str) -> dict:
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
            raise Incomplete()
        if status == "error":
            raise value
        if "text/plain" in result and "text/plain" in value:
            last, cur = result["text/plain"], value["text/plain"]
            result = {"text/plain": last + cur} if last or cur else value
        else:
            result = value
    return result


def _scala_line(code: str) -> tuple[str, Any]:
    """One interpreter call: ("ok", data) | ("incomplete", None) | ("error", ScalaError)."""
    m = _MAGIC.match(code)
    if m:
        try:
            return "ok", _scala_magic(m.group(1), m.group(2).strip())
        except ScalaError as exc:
            return "error", exc
    interp = _R["scala"]
    writer, buf, stream = _R["scala_writer"], _R["scala_buf"], _R["scala_stream"]
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


def _scala_error(text: str) -> ScalaError:
    """Livy's shape: evalue is the first line, the traceback the lines after it. (Scala 2.13
    puts a caret line first, pointing into a prompt the client never showed: dropped.)"""
    lines = text.splitlines(keepends=True)
    while lines and (not lines[0].strip() or _CARET.match(lines[0])):
        lines.pop(0)
    if not lines:
        return ScalaError("Error", "unknown error", [])
    rest = [ln if ln.endswith("\n") else ln + "\n" for ln in lines[1:]]
    return ScalaError("Error", lines[0].strip(), rest)


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
    interp = _R["scala"]
    opt = interp.valueOfTerm(name) if name else None
    if opt is None or opt.isEmpty():
        raise ScalaError("NameError", f"Value {name} does not exist", [])
    value = opt.get()
    jvm = _R["sc"]._jvm
    if hasattr(value, "getClass") and \
            jvm.java.lang.Class.forName("org.apache.spark.rdd.RDD").isInstance(value):
        value = value.take(10)
    return value


def _scala_json(value) -> Any:
    """The value as json4s (Livy's serializer, in Spark's jars) writes it, read back here."""
    jvm = _R["sc"]._jvm
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
            raise ScalaError("ValueError", "Failed to convert value into a JSON value", []) \
                from None
    if name == "table":
        return _scala_table(_scala_json(_scala_value(arg)))
    raise ScalaError("UnknownMagic", f"Unknown magic command {name}", [])


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
        raise ScalaError("TypeError", "table rows have different types", []) from None
    return {"application/vnd.livy.table.v1+json": {"headers": list(headers.values()),
                                                   "data": data}}


def complete(code: str, cursor: int) -> list[str]:
    """Candidates from the Scala REPL's own completer (member names, as Livy returns them)."""
    interp = _scala()
    completion_cls = _R["sc"]._jvm.scala.tools.nsc.interpreter.shell.ReplCompletion
    completer = _R.get("scala_completer")
    if completer is None:
        completer = completion_cls(interp, getattr(completion_cls,
                                                   "$lessinit$greater$default$2")())
        _R["scala_completer"] = completer
    found = completer.complete(code, cursor, True).candidates()
    out: list[str] = []
    it = found.iterator()
    while it.hasNext():
        cand = str(it.next().name())
        if cand and cand not in out:
            out.append(cand)
    return out
