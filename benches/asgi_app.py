"""The minimal ASGI app of the uvicorn workloads (benches/workloads.py): 200 and "hello".

Served by ``uvicorn asgi_app:app --app-dir benches --lifespan off`` on the loop under test.
``GET /loop`` answers with the module and class of the running loop instead, which the
workload asks once before the load to check that uvicorn runs on the loop it was told to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"5")]


async def app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    if scope["path"] == "/loop":
        loop = type(asyncio.get_running_loop())
        body = f"{loop.__module__}.{loop.__qualname__}".encode()
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": b"hello"})
