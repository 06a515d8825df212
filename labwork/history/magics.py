"""The `labwork` IPython extension: `%load_ext labwork` (preloaded in every labwork kernel).

    %labwork --help
    %labwork history on | off | show
    %labwork upload outputs/model.pkl [outputs/other.csv ...]
    %labwork status
"""
from __future__ import annotations

import shlex
from typing import Any

from labwork.history.delivery import log

HELP = """\
%labwork: run history for this notebook

  %labwork history on       record every cell from now on (code, timing, status, errors)
  %labwork history off      stop recording cells (logged values still go to the run)
  %labwork history show     this kernel's recorded entries
  %labwork history          whether history is on
  %labwork upload PATH...   copy files from the project's outputs/ folder to the run's outputs
  %labwork status           run id, project, notebook and delivery state

Values: from labwork import get_logger; get_logger().log("accuracy", 0.93)
"""

_loaded: dict[int, Any] = {}


def _print_show(rec: Any) -> None:
    entries = rec.entries
    state = "on" if rec.history else "off"
    print(f"run {rec.run_id} · history {state} · {len(entries)} entries · "
          f"{len(rec.values)} values · {len(rec.uploads)} uploads")
    if not entries:
        print("(no entries yet: turn history on with %labwork history on)")
        return
    print(f"{'#':>4}  {'[n]':>5}  {'status':<11}  {'ms':>9}  code")
    for e in entries:
        first = (e["code"].strip().splitlines() or [""])[0]
        if len(first) > 60:
            first = first[:57] + "..."
        ms = (e["ended"] - e["started"]) * 1000.0
        count = "" if e["execution_count"] is None else f"[{e['execution_count']}]"
        err = f"  {e['error_name']}: {e['error_value']}" if e.get("error_name") else ""
        print(f"{e['seq']:>4}  {count:>5}  {e['status']:<11}  {ms:>9.1f}  {first}{err}")


def _print_status(rec: Any) -> None:
    c = rec.ctx
    s = rec.sender
    print(f"run:        {rec.run_id}")
    print(f"history:    {'on' if rec.history else 'off'}")
    print(f"project:    {c.project or '-'} ({c.project_dir or 'no project folder'})")
    print(f"notebook:   {c.notebook or '-'}")
    print(f"runconfig:  {c.runconfig or '-'}")
    print(f"kernel:     {c.kernel_id}")
    print(f"control:    {c.control_url() or 'none found'}"
          f"{' (unreachable: ' + str(s.last_error) + ')' if s.down else ''}")
    print(f"delivered:  {s.sent} records; spooled now: {s.pending_in_spool()}")
    print(f"log:        {c.log_file}")


def labwork_magic(line: str) -> None:
    from IPython.core.error import UsageError

    from labwork.history.recorder import UploadRefused, recorder

    try:
        args = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%labwork: {exc}") from None
    if not args or args[0] in ("-h", "--help", "help"):
        print(HELP)
        return
    rec = recorder()
    cmd, rest = args[0], args[1:]
    if cmd == "history":
        sub = rest[0] if rest else ""
        if sub in ("on", "off"):
            if len(rest) > 1:
                raise UsageError(f"%labwork history {sub} takes no more arguments")
            rec.set_history(sub == "on")
            print(f"labwork: run history {sub} (run {rec.run_id[:8]})")
        elif sub == "show":
            _print_show(rec)
        elif sub == "":
            print(f"labwork: run history is {'on' if rec.history else 'off'} (run {rec.run_id[:8]})")
        else:
            raise UsageError(f"%labwork history: expected on, off or show, got {sub!r}")
        return
    if cmd == "upload":
        if not rest:
            raise UsageError("%labwork upload: give the file(s), e.g. %labwork upload outputs/model.pkl")
        refused = []
        for path in rest:
            try:
                item = rec.upload(path)
            except UploadRefused as exc:
                refused.append(str(exc))
                continue
            print(f"labwork: uploading {item['path']} ({item['size']:,} bytes) to run {rec.run_id[:8]}")
        if refused:
            raise UsageError("\n".join(refused))
        return
    if cmd == "status":
        _print_status(rec)
        return
    raise UsageError(f"%labwork: unknown command {cmd!r} (see %labwork --help)")


def register_magic_only(ipython: Any) -> None:
    """`%labwork` without the cell hooks: for kernels that record their cells themselves (labwork's
    sparkmagic kernels, whose shell only sees sparkmagic's rewritten cells)."""
    ipython.register_magic_function(labwork_magic, magic_kind="line", magic_name="labwork")


def load_ipython_extension(ipython: Any) -> None:
    from labwork.history.recorder import recorder

    if id(ipython) in _loaded:
        return
    rec = recorder(user_ns=getattr(ipython, "user_ns", None))
    ipython.register_magic_function(labwork_magic, magic_kind="line", magic_name="labwork")
    ipython.events.register("pre_run_cell", rec.pre_run_cell)
    ipython.events.register("post_run_cell", rec.post_run_cell)
    _loaded[id(ipython)] = rec
    log.info("labwork extension loaded: run %s, history %s, project %s, notebook %s",
             rec.run_id, "on" if rec.history else "off", rec.ctx.project_dir, rec.ctx.notebook)


def unload_ipython_extension(ipython: Any) -> None:
    rec = _loaded.pop(id(ipython), None)
    if rec is None:
        return
    for event, fn in (("pre_run_cell", rec.pre_run_cell), ("post_run_cell", rec.post_run_cell)):
        try:
            ipython.events.unregister(event, fn)
        except ValueError:
            pass
    # the cell running %unload_ext announced itself: forget it so no half entry is left behind
    rec._stack.clear()
