"""labwork.gateway: a Livy-compatible REST gateway where every session is its own PySpark driver.

`create_gateway_app(settings, state_dir=...)` builds the FastAPI app (see `labwork.gateway.app`);
`labwork.gateway.mount.attach` mounts it at `/livy` on the control plane; `labwork gateway serve`
runs it alone. `labwork.gateway.sparkmagic_kernels` makes sparkmagic kernels that talk to it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labwork.gateway.app import create_gateway_app
    from labwork.gateway.gateway import Gateway

__all__ = ["create_gateway_app", "Gateway"]


def __getattr__(name: str) -> Any:
    if name == "create_gateway_app":
        from labwork.gateway.app import create_gateway_app
        return create_gateway_app
    if name == "Gateway":
        from labwork.gateway.gateway import Gateway
        return Gateway
    raise AttributeError(name)
