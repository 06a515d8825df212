"""A kernel that answers every cell with how to prepare its run configuration's environment.

Started instead of the real kernel when the environment is missing, so the user sees the command
to run in the notebook itself rather than a kernel that dies.
"""
from __future__ import annotations

from typing import Any

from ipykernel.ipkernel import IPythonKernel

from labwork import envvars


class UnpreparedKernel(IPythonKernel):
    implementation = "labwork-unprepared"

    async def do_execute(self, code: str, silent: bool, store_history: bool = True,
                         user_expressions: dict | None = None, allow_stdin: bool = False,
                         **kwargs: Any) -> dict[str, Any]:
        message = envvars.get(envvars.UNPREPARED) or "environment not prepared"
        if not code.strip():
            return {"status": "ok", "execution_count": self.execution_count, "payload": [],
                    "user_expressions": {}}
        content = {"ename": "EnvironmentNotPrepared", "evalue": message,
                   "traceback": [f"\x1b[0;31mEnvironmentNotPrepared\x1b[0m: {message}"]}
        self.send_response(self.iopub_socket, "error", content)
        return {"status": "error", "execution_count": self.execution_count, **content}
