"""The control plane's database: SQLAlchemy 2 with Alembic migrations (SQLite WAL or PostgreSQL)."""
from labwork.store.db import Base, Store

__all__ = ["Base", "Store"]
