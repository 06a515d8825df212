"""Starting a session's Spark driver, and the warm pool of drivers started before they are asked for.

`launch_driver` makes the driver's folder, starts its kernel and boots the SparkSession in it;
a driver that dies while it boots raises `DriverDied` with the tail of its stderr. `WarmPool`
keeps `[gateway] warm_pool` booted drivers for sessions that ask for nothing of their own.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import uuid
from collections.abc import Awaitable, Callable, Iterator

from labwork.gateway.driver import Driver, DriverDied
from labwork.processes import tail
from labwork.gateway.protocol import CreateRequest
from labwork.gateway.spark_conf import DriverConfig

log = logging.getLogger("labwork.gateway")

STARTUP_TIMEOUT_S = 600.0


async def launch_driver(config: DriverConfig, req: CreateRequest | None, kind: str, label: str, *,
                        orphan_grace_s: float,
                        on_created: Callable[[Driver], None] | None = None) -> Driver:
    """A booted driver under `state_dir/drivers/<label>-<random>`; `on_created` sees it first."""
    ddir = config.state_dir / "drivers" / f"{label}-{uuid.uuid4().hex[:8]}"
    (ddir / "tmp").mkdir(parents=True, exist_ok=True)
    (ddir / "repl-classes").mkdir(exist_ok=True)
    driver = Driver(ddir)
    if on_created is not None:
        on_created(driver)
    env = config.env()
    env["SPARK_LOCAL_DIRS"] = str(ddir / "tmp")
    driver.launch(env=env)
    cfg = {"conf": config.conf(req, kind, driver_dir=ddir), "secret": driver.secret,
           "gateway_pid": os.getpid(), "orphan_grace_s": orphan_grace_s,
           "sql_max_rows": 1000, "max_output_bytes": config.settings.max_output_bytes}
    boot = asyncio.ensure_future(driver.boot(cfg, STARTUP_TIMEOUT_S))
    death = asyncio.ensure_future(driver.dead.wait())
    try:
        await asyncio.wait({boot, death}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        boot.cancel()
        death.cancel()
        await driver.stop(grace=2)
        raise
    death.cancel()
    if not boot.done():
        boot.cancel()
        last = "\n".join(tail(driver.err_path, 5))
        raise DriverDied(f"{driver.death_reason()}\n{last}")
    try:
        boot.result()
    except BaseException:
        await driver.stop(grace=2)
        raise
    return driver


Launch = Callable[..., Awaitable[Driver]]


class WarmPool:
    """Booted drivers waiting for a default session. Falsy while empty."""

    def __init__(self, size: int, launch: Launch, accepting: Callable[[], bool]) -> None:
        self.size = size
        self._launch = launch          # the gateway's launch_driver
        self._accepting = accepting    # False once the gateway stops: a late driver stops itself
        self.drivers: list[Driver] = []
        self._starting = 0
        self._tasks: set[asyncio.Task] = set()

    def __len__(self) -> int:
        return len(self.drivers)

    def __iter__(self) -> Iterator[Driver]:
        return iter(list(self.drivers))

    @staticmethod
    def eligible(req: CreateRequest) -> bool:
        """Only a session that sets no resources, files or conf may take a pooled driver."""
        r = req
        return (not r.conf and not r.jars and not r.pyFiles and not r.files and not r.archives
                and r.driverMemory is None and r.driverCores is None and r.executorMemory is None
                and r.executorCores is None and r.numExecutors is None and r.queue is None)

    def fill(self) -> None:
        want = self.size - len(self.drivers) - self._starting
        for _ in range(max(0, want)):
            self._starting += 1
            task = asyncio.ensure_future(self._add())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _add(self) -> None:
        made: list[Driver] = []
        try:
            drv = await self._launch(None, "shared", "warm", on_created=made.append)
            if self._accepting():
                self.drivers.append(drv)
            else:
                await drv.stop()
                shutil.rmtree(drv.dir, ignore_errors=True)
        except Exception as exc:  # noqa: BLE001
            log.warning("warm driver failed to start: %s", exc)
            for d in made:
                shutil.rmtree(d.dir, ignore_errors=True)
        finally:
            self._starting -= 1

    def take(self) -> Driver | None:
        while self.drivers:
            drv = self.drivers.pop(0)
            if not drv.dead.is_set():
                self.fill()
                return drv
        return None

    def prune(self) -> None:
        """Drop drivers that died while they waited, and start their replacements."""
        for d in list(self.drivers):
            if d.dead.is_set():
                self.drivers.remove(d)
                self.fill()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(d.stop() for d in self.drivers), return_exceptions=True)
        self.drivers.clear()

    def kill_now(self) -> None:
        for d in self.drivers:
            d.kill_now()
