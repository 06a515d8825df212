"""Job tables: a job (a notebook, its configuration, parameters and schedule) and its runs.

A scheduled run carries the fire time it stands for in `scheduled_for`; (job, scheduled_for) is
unique, so a fire time can never make two runs, even across a control-plane restart.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from labwork.store.db import Base


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_jobs_project_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    notebook: Mapped[str] = mapped_column(String(1000))  # relative to the project folder
    runconfig: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # a ServerConfig (kind python|spark, resources)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    schedule: Mapped[str | None] = mapped_column(String(200), nullable=True)  # cron expression
    timezone: Mapped[str] = mapped_column(String(100), default="UTC")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)  # the schedule's switch
    missed: Mapped[str] = mapped_column(String(20), default="run_once")  # run_once | skip
    timeout_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    retry_delay_s: Mapped[float] = mapped_column(Float, default=30.0)
    max_concurrent: Mapped[int] = mapped_column(Integer, default=1)
    webhook_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    notify_success: Mapped[bool] = mapped_column(Boolean, default=False)
    next_fire_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class JobRunRow(Base):
    """One trigger of a job: queued, running, completed, failed, cancelled, skipped or missed."""

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job_id", "scheduled_for", name="uq_job_runs_fire_time"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    trigger: Mapped[str] = mapped_column(String(20))  # manual | schedule | retry
    scheduled_for: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    runconfig: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    config_hash: Mapped[str] = mapped_column(String(64))
    notebook_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    retry_of: Mapped[int | None] = mapped_column(Integer, nullable=True)
    kernel_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    history_run: Mapped[str | None] = mapped_column(String(64), nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    output_path: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    log_path: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
