"""Run-history tables: runs, their entries (cells or Spark statements), logged values and artifacts.

Every row's primary key is the id of the record that created it (a uuid hex made in the kernel,
or a deterministic id for gateway statements), so replaying a record is a no-op: exactly once.
Values and artifacts name their entry by id without a foreign key, because a value logged inside a
cell is sent before the cell's entry (the entry is complete only when the cell ends).
Text and JSON columns go through `labwork.history.encoding`, so NaN, infinities and NUL characters
are stored the same way on SQLite and PostgreSQL.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from labwork.history.encoding import FaithfulJSON, SafeString, SafeText
from labwork.store.db import Base


class RunRow(Base):
    """One kernel session of one notebook (or one gateway Spark session)."""

    __tablename__ = "history_runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(20))  # kernel | gateway | script
    project: Mapped[str | None] = mapped_column(SafeString(200), nullable=True, index=True)
    project_dir: Mapped[str | None] = mapped_column(SafeString(1000), nullable=True, index=True)
    notebook: Mapped[str | None] = mapped_column(SafeString(1000), nullable=True, index=True)
    runconfig: Mapped[str | None] = mapped_column(SafeString(200), nullable=True)
    user: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)  # who ran it
    kernel_id: Mapped[str | None] = mapped_column(SafeString(100), nullable=True)
    host: Mapped[str | None] = mapped_column(SafeString(200), nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(20), index=True)  # running|completed|failed|interrupted
    history: Mapped[bool] = mapped_column(Boolean, default=False)  # the kernel's switch, last known
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    entry_count: Mapped[int] = mapped_column(Integer, default=0)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    info: Mapped[dict[str, Any]] = mapped_column(FaithfulJSON, default=dict)


class EntryRow(Base):
    """One cell execution (or gateway statement) while history was on."""

    __tablename__ = "history_entries"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("history_runs.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))  # cell | statement
    execution_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    code: Mapped[str] = mapped_column(SafeText)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    duration_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(20), index=True)  # ok | error | interrupted
    error_name: Mapped[str | None] = mapped_column(SafeString(200), nullable=True)
    error_value: Mapped[str | None] = mapped_column(SafeText, nullable=True)
    traceback: Mapped[str | None] = mapped_column(SafeText, nullable=True)


class ValueRow(Base):
    """One `log(name, value)` call. Repeated names form a series ordered by `seq`."""

    __tablename__ = "history_values"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("history_runs.id", ondelete="CASCADE"), index=True)
    entry_id: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    name: Mapped[str] = mapped_column(SafeString(200), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))  # number | string | list
    value: Mapped[Any] = mapped_column(FaithfulJSON)
    logged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ArtifactRow(Base):
    """A file uploaded from the project's outputs/ folder. Every upload is kept; the newest of a
    path is the one listed and downloaded. The bytes live at `artifacts_dir/<run>/<id>`."""

    __tablename__ = "history_artifacts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("history_runs.id", ondelete="CASCADE"), index=True)
    entry_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    path: Mapped[str] = mapped_column(SafeString(1000))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
