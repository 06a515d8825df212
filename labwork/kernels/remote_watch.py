"""The host side of an SSH kernel: `python -m labwork.kernels.remote_watch CMD...`.

It runs the kernel command in a session of its own (so the kernel's children are in its process
group), prints `LABWORK_PID=<kernel pid>` for the provisioner (interrupts and shutdown signal that
pid), and then watches its standard input, which is the kernel's SSH session: the provisioner keeps
that pipe open for the kernel's whole life and never writes to it again. End of input means the
session is gone — the provisioner's ssh process was killed, the Jupyter server or job runner that
held it died, the connection broke — and then the kernel's whole process group is ended
(SIGTERM, then SIGKILL after a short grace), so no kernel is left running on the host.

When the kernel ends by itself, this process exits with the kernel's status (128 + N for a
signal, as a shell reports it), which the provisioner sees as its ssh session's exit code.

Only the standard library: this runs in the run configuration's environment on the host.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time

GRACE_S = 3.0


def end_group(pgid: int, grace_s: float = GRACE_S, proc: subprocess.Popen | None = None) -> None:
    """SIGTERM the process group, then SIGKILL what is left of it after `grace_s`."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if proc is not None:
            proc.poll()  # reap the leader if it ended (a zombie still counts as the group's)
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def watched(cmd: list[str]) -> str:
    """The shell words that run the kernel command `cmd` under this watcher, with the kernel's own
    interpreter (`cmd[0]`, which has labwork's kernel-side package on its PYTHONPATH)."""
    words = [cmd[0], "-m", "labwork.kernels.remote_watch", "--", *cmd]
    return " ".join(shlex.quote(w) for w in words)


def status_of(code: int) -> int:
    """A Popen return code as an exit status: -N (killed by signal N) becomes 128 + N."""
    return 128 - code if code < 0 else code


def main(argv: list[str] | None = None) -> int:
    cmd = sys.argv[1:] if argv is None else argv
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        print("usage: python -m labwork.kernels.remote_watch CMD...", file=sys.stderr)
        return 2
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
    print(f"LABWORK_PID={proc.pid}", flush=True)
    gone = threading.Event()

    def watch_session() -> None:
        try:
            while os.read(0, 4096):  # nothing is sent: any bytes are read and dropped
                pass
        except OSError:
            pass
        gone.set()
        if proc.poll() is None:
            try:  # the session's stderr may be gone with it
                print(f"labwork: the SSH session of kernel pid {proc.pid} is gone; ending the kernel",
                      file=sys.stderr, flush=True)
            except OSError:
                pass
            end_group(proc.pid, proc=proc)

    threading.Thread(target=watch_session, name="labwork-session-watch", daemon=True).start()

    def forward(signum: int, _frame: object) -> None:  # a TERM/HUP to this process ends the kernel
        try:
            os.killpg(proc.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    code = proc.wait()
    end_group(proc.pid, grace_s=GRACE_S if not gone.is_set() else 0.5)  # what the kernel left in its group
    return status_of(code)


if __name__ == "__main__":
    sys.exit(main())
