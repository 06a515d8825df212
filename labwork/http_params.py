"""Bounded types for route parameters, declared once: an id or an offset beyond what the database
stores (or negative) is a 400 naming the parameter, never an overflow deep inside."""
from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import Field

from labwork.inputs import MAX_ID

IdQuery = Annotated[int | None, Query(ge=0, le=MAX_ID, description="an id (0 to 2^63-1)")]
OffsetQuery = Annotated[int, Query(ge=0, le=MAX_ID, description="a byte or row offset (0 to 2^63-1)")]
IdField = Annotated[int, Field(ge=0, le=MAX_ID)]
