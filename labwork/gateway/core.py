"""Moved: the gateway is `labwork.gateway.gateway.Gateway` (also `labwork.gateway.Gateway`).

Kept only for the control plane's modules that still import `labwork.gateway.core.Gateway`
(server/parts.py, notebooks/manager.py, history/service.py); delete it once they import
`labwork.gateway.Gateway`.
"""
from labwork.gateway.gateway import Gateway

__all__ = ["Gateway"]
