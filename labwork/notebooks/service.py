"""Stub: this part attaches its routes and hooks to the control plane here."""
from __future__ import annotations

from fastapi import FastAPI

from labwork.server.context import Context


def attach(app: FastAPI, ctx: Context) -> None:
    """Plug this part into the control plane (routes, ctx.parts, start-up/shut-down hooks)."""
