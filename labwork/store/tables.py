"""Foundation tables: registered projects, Jupyter servers and kernel launches."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from labwork.store.db import Base


class ProjectRow(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(String(1000), unique=True)
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ServerRow(Base):
    """One Jupyter server run. Rows stay after the server stops: they index its log."""

    __tablename__ = "servers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    # Whose server it is (a server per user and project); None: started by labwork itself.
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    state: Mapped[str] = mapped_column(String(20), index=True)  # starting|running|stopping|stopped|failed
    ui: Mapped[str] = mapped_column(String(10))  # lab | classic
    config: Mapped[dict] = mapped_column(JSON)
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    token: Mapped[str | None] = mapped_column(String(200), nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    log_path: Mapped[str] = mapped_column(String(1000))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    stop_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class KernelLaunchRow(Base):
    """A kernel a labwork server started: which notebook, run configuration and server config."""

    __tablename__ = "kernel_launches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    server_id: Mapped[int | None] = mapped_column(ForeignKey("servers.id", ondelete="SET NULL"), nullable=True)
    kernel_id: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    spark_ui_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # where the control plane proxies that UI (/spark/kernel-<id>), when the kernel set proxyBase
    spark_ui_proxy: Mapped[str | None] = mapped_column(String(200), nullable=True)
    notebook: Mapped[str | None] = mapped_column(String(1000), nullable=True, index=True)
    runconfig: Mapped[str] = mapped_column(String(200))
    server_config: Mapped[dict] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
