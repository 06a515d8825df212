"""The tables of access: dashboard log-in sessions."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from labwork.store.db import Base


class WebSessionRow(Base):
    """A browser logged in to the dashboard. Only the SHA-256 of the session id is kept, so a copy
    of the database does not let anyone in."""

    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
