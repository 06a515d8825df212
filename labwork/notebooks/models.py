"""The shapes the server manager answers with (docs/notebooks.md), as pydantic models, so the
routes declare them and /api/openapi.json shows real schemas. The manager returns
`model_dump(mode="json")` of these: the JSON the CLI, the dashboard and the tests read."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

State = Literal["none", "starting", "running", "stopping", "stopped", "failed"]


class ProjectBrief(BaseModel):
    id: int
    name: str
    path: str


class KernelInfo(BaseModel):
    """One kernel of a running server, with the notebook it serves (from /api/sessions)."""
    id: str | None = None
    name: str | None = None
    display_name: str | None = None
    state: str | None = Field(None, description="Jupyter's execution_state: idle, busy, starting…")
    last_activity: str | None = None
    connections: int | None = None
    notebook: str | None = Field(None, description="the notebook's path in the project, when a session has one")
    session_id: str | None = None
    session_type: str | None = None
    spark_ui_url: str | None = Field(None, description="the kernel's Spark UI, once its `spark` is ready")
    end: dict[str, Any] | None = Field(None, description=(
        "how this kernel last ended (labwork.kernels.ends.KernelEnd: exit_code, signal, oom, "
        "memory_limit, reason) when it died and Jupyter restarted it"))
    end_reason: str | None = Field(None, description="that end in words: 'out of memory (limit 256 MiB)'")


class ServerSummary(BaseModel):
    """One server of a project (running or not); `state` is "none" when the project never had one."""
    model_config = ConfigDict(extra="forbid")

    id: int | None
    project: ProjectBrief | None
    state: State
    ui: str | None
    config: dict[str, Any] | None = Field(description="the ServerConfig it was started with")
    user: str | None = Field(None, description="whose server it is (a server per user and project); "
                                               "null for one labwork started itself")
    port: int | None
    base_url: str | None = Field(description="the server's own address, its base_url included (this machine only)")
    proxy_url: str | None = Field(None, description=(
        "the UI through the control plane, /user/<name>/<project>/lab: what a browser opens (the "
        "labwork session lets it in; no Jupyter token); null unless active"))
    url: str | None = Field(description="the UI's own address with the token (this machine only); null unless active")
    token: str | None = Field(description="null unless active")
    pid: int | None
    started: str | None
    deadline: str | None = Field(description="null = no limit")
    seconds_left: int | None = Field(description="null when not active or no limit")
    no_limit: bool | None
    stopped: str | None
    stop_reason: str | None
    log_path: str | None


class BusyKernel(BaseModel):
    """A kernel busy for longer than `idle.busy_ceiling` (reported, never stopped)."""
    id: str
    name: str | None = None
    busy_since: str | None = Field(None, description="busy at least since then")
    busy_s: float


class IdleStatus(BaseModel):
    """What the control plane's last look at a running server saw (labwork.notebooks.idle)."""
    timeout_s: float | None = Field(None, description="the server's idle timeout; null = never stops when idle")
    last_activity: str | None = Field(None, description="the last cell run, kernel output, terminal or client request")
    idle_s: float | None = Field(None, description="seconds since then; 0 while a kernel is busy")
    stop_at: str | None = Field(None, description="when it stops if nothing happens; null while a kernel is busy "
                                                   "or without an idle timeout")
    busy_kernels: int = 0
    long_busy: list[BusyKernel] = Field(default_factory=list,
                                        description="kernels busy for longer than busy_ceiling_s")
    busy_ceiling_s: float | None = None
    checked: str | None = None


class ServerStatus(ServerSummary):
    """`status`, `start`, `stop`, `extend`: the newest server with its kernels, and (running) its idle state."""
    kernels: list[KernelInfo] = []
    kernel_ends: list[dict[str, Any]] = Field(default_factory=list, description=(
        "the server's last kernel ends, newest first: each a KernelEnd with its reason"))
    idle: IdleStatus | None = None


class ServerHistoryEntry(ServerSummary):
    """A server of the project's history, and whether its log is still kept."""
    log_kept: bool


class LogChunk(BaseModel):
    """Log text from byte `offset`; pass `offset` back to follow while `active`."""
    server_id: int
    state: str
    active: bool
    path: str
    text: str
    offset: int
    size: int
    eof: bool


class OpenResult(BaseModel):
    """A notebook's URL on the project's server (started when none ran)."""
    notebook: str
    url: str = Field(description="on the server's own address, with its token (this machine only)")
    proxy_url: str | None = Field(None, description="through the control plane (what a browser opens)")
    started: bool
    config: dict[str, Any] | None
    last_config: dict[str, Any] | None
    note: str | None
    server: ServerStatus
