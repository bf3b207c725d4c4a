"""Helpers for the networking tests (sockets, servers, datagrams, subprocesses, TLS)."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from loop_helpers import run_until_done

T = TypeVar("T")


def run(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], guard: float = 10.0) -> T:
    """Run `coro` as a task on `loop` to completion (cancelled after `guard` seconds)."""
    result: T = run_until_done(loop, loop.create_task(coro), guard)
    return result


def has_ipv6() -> bool:
    """Whether a socket can be bound to ::1 here."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@contextmanager
def unix_path(name: str = "sock") -> Iterator[str]:
    """A fresh path for a Unix socket (short: sun_path is limited to 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="sl-") as tmp:
        yield os.path.join(tmp, name)


def open_fds() -> set[int]:
    """The fds open in this process right now."""
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


class Collector(asyncio.Protocol):
    """A stream protocol that records what happens to it, for assertions."""

    def __init__(self, loop: asyncio.AbstractEventLoop, keep_open: bool = False) -> None:
        self.keep_open = keep_open  # what eof_received returns: stay half-open?
        self.transport: asyncio.Transport | None = None
        self.data = bytearray()
        self.events: list[str] = []
        self.made: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[BaseException | None] = loop.create_future()
        self.eof: asyncio.Future[None] = loop.create_future()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.loop = loop

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # or a pipe's half transport
        self.events.append("made")
        self.made.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.data += data
        self._wake()

    def eof_received(self) -> bool | None:
        self.events.append("eof")
        self.eof.set_result(None)
        return self.keep_open

    def pause_writing(self) -> None:
        self.events.append("pause_writing")

    def resume_writing(self) -> None:
        self.events.append("resume_writing")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append("lost")
        if not self.eof.done():
            self.eof.cancel()
        self.lost.set_result(exc)
        self._wake()

    async def wait_for(self, n: int) -> bytes:
        """Wait until at least `n` bytes arrived (or the connection is lost)."""
        while len(self.data) < n and not self.lost.done():
            fut: asyncio.Future[None] = self.loop.create_future()
            self._waiters.append((n, fut))
            await fut
        return bytes(self.data)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for _, fut in waiters:
            if not fut.done():
                fut.set_result(None)
