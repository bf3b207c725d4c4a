"""Real clients and servers on steploop: aiohttp (server and client), uvicorn serving an ASGI app
with `--loop steploop:new_event_loop` (one worker and two), httpx, websockets, and an asyncio
streams echo with the client in another process.

The in-process tests run on asyncio and steploop (the `loop` fixture); the uvicorn ones run the
server on steploop in a child process, as a user would."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest
from loop_helpers import new_loop_of_kind
from net_helpers import no_leaked_fds, run  # noqa: F401 (no_leaked_fds: autouse)

# ---------------------------------------------------------------- aiohttp


def test_aiohttp_server_and_client(loop: asyncio.AbstractEventLoop) -> None:
    from aiohttp import ClientSession, WSMsgType, web

    async def hello(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return web.json_response({"hello": name, "loop": type(asyncio.get_running_loop()).__name__})

    async def upload(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(body=body[::-1])

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for i in range(100):
            await resp.write(b"%d\n" % i)
        await resp.write_eof()
        return resp

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for msg in sock:
            if msg.type == WSMsgType.TEXT:
                await sock.send_str(msg.data.upper())
        return sock

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/hello/{name}", hello)
        app.router.add_post("/upload", upload)
        app.router.add_get("/stream", stream)
        app.router.add_get("/ws", ws)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        base = f"http://{host}:{port}"
        try:
            async with ClientSession() as session:
                async with session.get(f"{base}/hello/world") as resp:
                    assert resp.status == 200
                    data = await resp.json()
                    assert data == {"hello": "world", "loop": type(loop).__name__}
                big = os.urandom(512 * 1024)  # aiohttp's default client_max_size is 1 MiB
                async with session.post(f"{base}/upload", data=big) as resp:
                    assert await resp.read() == big[::-1]
                async with session.get(f"{base}/stream") as resp:
                    lines = [line async for line in resp.content]
                    assert lines == [b"%d\n" % i for i in range(100)]
                async with session.get(f"{base}/missing") as resp:
                    assert resp.status == 404
                results = await asyncio.gather(
                    *(session.get(f"{base}/hello/{i}") for i in range(20))
                )
                for i, resp in enumerate(results):
                    assert (await resp.json())["hello"] == str(i)
                    resp.release()
                async with session.ws_connect(f"{base}/ws") as sock:
                    await sock.send_str("over websocket")
                    assert await sock.receive_str() == "OVER WEBSOCKET"
        finally:
            await runner.cleanup()

    run(loop, main(), guard=30)


# ---------------------------------------------------------------- httpx


def test_httpx_async_client(loop: asyncio.AbstractEventLoop) -> None:
    import httpx

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A minimal HTTP/1.1 server: enough for keep-alive requests with bodies.
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:  # the client closed its keep-alive connection
                break
            lines = head.decode().split("\r\n")
            method, path, _ = lines[0].split(" ")
            headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            reply = f"{method} {path} {len(body)}".encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(reply), reply)
            )
            await writer.drain()
        writer.close()

    async def main() -> list[str]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                replies = [(await client.get("/a")).text]
                replies.append((await client.post("/b", content=b"x" * 100_000)).text)
                many = await asyncio.gather(*(client.get(f"/c{i}") for i in range(10)))
                replies += [r.text for r in many]
                with pytest.raises(httpx.ConnectError):
                    await client.get(f"http://127.0.0.1:{_free_port()}/")
            return replies
        finally:
            server.close()
            await server.wait_closed()

    replies = run(loop, main(), guard=30)
    assert replies == ["GET /a 0", "POST /b 100000"] + [f"GET /c{i} 0" for i in range(10)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ---------------------------------------------------------------- websockets


def test_websockets_echo(loop: asyncio.AbstractEventLoop) -> None:
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(conn: ServerConnection) -> None:
        async for message in conn:
            await conn.send(message)

    async def main() -> list[Any]:
        async with serve(echo, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}") as ws:
                got = []
                for message in ("text", b"binary", "x" * 100_000):
                    await ws.send(message)
                    got.append(await ws.recv())
                await ws.ping()
            return got

    assert run(loop, main(), guard=30) == ["text", b"binary", "x" * 100_000]


# ---------------------------------------------------------------- streams, client in a process


CLIENT = """
import asyncio, sys
import steploop

async def main(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for size in (1024, 10 * 1024, 100 * 1024):
        payload = bytes(i % 251 for i in range(size))
        for _ in range(20):
            writer.write(payload)
            await writer.drain()
            assert await reader.readexactly(size) == payload
    writer.close()
    await writer.wait_closed()
    print("client ok on", type(asyncio.get_running_loop()).__name__)

steploop.run(main(int(sys.argv[1])))
"""


def test_streams_echo_with_client_in_another_process(loop: asyncio.AbstractEventLoop) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main() -> bytes:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLIENT, str(port), stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        server.close()
        await server.wait_closed()
        return out

    assert run(loop, main(), guard=30) == b"client ok on Loop\n"


# ---------------------------------------------------------------- fork


async def _echo_once() -> bytes:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
    writer.write(b"echo")
    writer.write_eof()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    return data


def test_new_loop_in_a_forked_child(loop: asyncio.AbstractEventLoop, loop_kind: str) -> None:
    # What gunicorn-style workers do: fork with a loop open, make a fresh loop in the child.
    # The child's loop works, and the parent's (same poll, same waker) is untouched.
    assert run(loop, _echo_once()) == b"echo"
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        code = 1
        try:
            child = new_loop_of_kind(loop_kind)
            code = 0 if child.run_until_complete(_echo_once()) == b"echo" else 2
            child.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert run(loop, _echo_once()) == b"echo"


# ---------------------------------------------------------------- uvicorn


APP = """
import asyncio, os

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    loop = asyncio.get_running_loop()
    reply = f"{type(loop).__module__}.{type(loop).__qualname__} {os.getpid()} {len(body)}"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": reply.encode()})
"""


@pytest.fixture
def app_dir(tmp_path: Any) -> Iterator[str]:
    (tmp_path / "sl_asgi_app.py").write_text(textwrap.dedent(APP))
    yield str(tmp_path)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            pytest.fail(f"uvicorn exited with {proc.returncode}:\n{out}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail("uvicorn did not start listening")


@pytest.mark.parametrize("workers", [1, 2])
def test_uvicorn_on_steploop(app_dir: str, workers: int) -> None:
    import httpx

    port = _free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", "sl_asgi_app:app",
        "--app-dir", app_dir, "--host", "127.0.0.1", "--port", str(port),
        "--loop", "steploop:new_event_loop", "--workers", str(workers),
        "--no-access-log",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, proc)
        loop = new_loop_of_kind("steploop")

        async def main() -> list[str]:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                replies = [(await client.post("/", content=b"y" * 200_000)).text]
                for _ in range(2 * workers):
                    # A new connection each time, so that every worker can take one.
                    async with httpx.AsyncClient() as fresh:
                        replies.append((await fresh.get(f"http://127.0.0.1:{port}/")).text)
            return replies

        try:
            replies = run(loop, main(), guard=30)
        finally:
            loop.close()
        loops = {reply.split()[0] for reply in replies}
        assert loops == {"steploop._loop.Loop"}
        assert replies[0].endswith(" 200000")
        pids = {int(reply.split()[1]) for reply in replies}
        assert proc.pid not in pids or workers == 1
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    log = out.decode()
    assert "Traceback" not in log, log
    assert "Application startup complete." in log
    assert "Finished server process" in log, log
    assert log.count("Finished server process") == workers
    assert proc.returncode == 0, log
