"""Results as Arrow IPC streams, on the gateway's side: streamed through, never held whole.

The driver stages a result with a statement of the gateway's own kind `arrow` (queued like any
other, see `in_driver/arrow_results.py`); `result_stream` then opens a connection of its own to
the driver's side channel and hands the bytes on chunk by chunk, and `upload` sends a request's
body the other way. The gateway's memory holds one chunk at a time.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from labwork.gateway.driver import Driver
from labwork.gateway.protocol import LivyError

ARROW_STREAM_TYPE = "application/vnd.apache.arrow.stream"
CHUNK = 256 * 1024
# what GET /version answers under "labwork" so kernels can tell this gateway from a plain Livy
CAPABILITY = {"arrow": 1}


async def _connect(driver: Driver, request: dict) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if driver is None or not driver.side_port or driver.dead.is_set():
        raise LivyError(409, "the session's driver is not running")
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", driver.side_port, limit=CHUNK), 10)
    except (OSError, asyncio.TimeoutError) as exc:
        raise LivyError(503, f"the session's driver does not answer: {exc}") from exc
    writer.write(json.dumps({**request, "secret": driver.secret}).encode() + b"\n")
    await writer.drain()
    return reader, writer


async def _header(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> dict:
    line = await reader.readline()
    try:
        head = json.loads(line) if line else {"error": "the driver closed the connection"}
    except ValueError:
        head = {"error": "the driver answered something that is not JSON"}
    if head.get("error"):
        writer.close()
        status = 413 if head.get("ename") == "ResultTooLarge" else 404 if "no Arrow result" in head[
            "error"] else 400
        raise LivyError(status, head["error"])
    return head


async def result_stream(driver: Driver, statement_id: int) -> tuple[dict, AsyncIterator[bytes]]:
    """(header: rows, bytes; the Arrow IPC stream's chunks) of a staged result."""
    reader, writer = await _connect(driver, {"op": "arrow_out", "statement": statement_id})
    head = await _header(reader, writer)

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    return
                yield data
        finally:
            writer.close()

    return head, chunks()


async def upload(driver: Driver, body: AsyncIterator[bytes], max_bytes: int) -> dict:
    """Send an Arrow IPC stream to the driver; returns its upload token and row count."""
    reader, writer = await _connect(driver, {"op": "arrow_in", "max_bytes": max_bytes})
    sent = 0
    try:
        async for chunk in body:
            if not chunk:
                continue
            sent += len(chunk)
            if sent > max_bytes + CHUNK:  # Arrow's framing on top of the data, bounded too
                raise LivyError(413, f"the upload is larger than this session's limit of "
                                     f"{max_bytes} bytes (gateway.max_result_bytes)")
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass  # the driver stopped reading: its answer says why
    except BaseException:
        writer.close()
        raise
    try:
        return await _header(reader, writer)
    finally:
        writer.close()
