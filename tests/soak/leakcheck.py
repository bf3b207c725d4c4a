"""Workloads shared by the short leak test (tests/soak/test_leaks.py) and the long soak
(scripts/soak.py): loops, callbacks, timers and connections, each run in rounds, with
the process's open fds, gc-tracked objects and RSS measured between rounds."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import struct
from collections.abc import Callable
from typing import Any

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def gc_objects() -> int:
    gc.collect()
    gc.collect()
    return len(gc.get_objects())


def _noop(*args: Any) -> None:
    pass


def loops(factory: LoopFactory, n: int) -> None:
    """Create, run once and close `n` loops."""
    for _ in range(n):
        loop = factory()
        loop.call_soon(_noop)
        loop.stop()
        loop.run_forever()
        loop.close()


def callbacks(loop: asyncio.AbstractEventLoop, n: int, batch: int = 10_000) -> None:
    """Run `n` callbacks (call_soon, in batches), each with an argument."""
    left = n
    while left > 0:
        k = min(batch, left)
        for i in range(k):
            loop.call_soon(_noop, i)
        loop.stop()
        loop.run_forever()
        left -= k


def timers(loop: asyncio.AbstractEventLoop, n: int, batch: int = 10_000) -> None:
    """Create `n` timers: nine in ten far in the future and cancelled at once (heap
    compaction), one in ten due at once; then cancel what is left, so nothing stays."""
    left = n
    base = loop.time()
    while left > 0:
        k = min(batch, left)
        handles = [
            loop.call_at(base - 1 if i % 10 == 0 else base + 1000 + i, _noop, i) for i in range(k)
        ]
        for i, h in enumerate(handles):
            if i % 10:
                h.cancel()
        loop.stop()
        loop.run_forever()
        for h in handles:
            h.cancel()
        del handles
        loop.stop()
        loop.run_forever()
        left -= k


async def _connections(loop: asyncio.AbstractEventLoop, n: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(100)
        writer.write(data)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        for i in range(n):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            sock = writer.get_extra_info("socket")
            # RST on close: no TIME_WAIT, so 10^5 connections do not exhaust local ports
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.write(b"ping %d" % i)
            assert (await reader.read(100)).startswith(b"ping")
            writer.close()
            await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()


def connections(loop: asyncio.AbstractEventLoop, n: int) -> None:
    """Open `n` TCP connections to a local echo server, one at a time, and close them."""
    loop.run_until_complete(_connections(loop, n))
    # let the server's handler tasks finish closing
    for _ in range(10):
        loop.stop()
        loop.run_forever()
