"""Sockets, streams and subprocesses: a smoke test of each layer (asyncio and steploop)."""

from __future__ import annotations

import asyncio
import socket
import sys

from loop_helpers import run_until_done


def test_sock_functions_on_socketpair(loop: asyncio.AbstractEventLoop) -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)

    async def main() -> bytes:
        await loop.sock_sendall(a, b"hello " * 10_000)
        a.shutdown(socket.SHUT_WR)
        chunks = []
        while data := await loop.sock_recv(b, 65536):
            chunks.append(data)
        return b"".join(chunks)

    try:
        assert run_until_done(loop, loop.create_task(main())) == b"hello " * 10_000
    finally:
        a.close()
        b.close()


def test_sock_recv_waits_for_data(loop: asyncio.AbstractEventLoop) -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)

    async def main() -> bytes:
        loop.call_later(0.01, a.send, b"late")
        return await loop.sock_recv(b, 100)

    try:
        assert run_until_done(loop, loop.create_task(main())) == b"late"
    finally:
        a.close()
        b.close()


def test_tcp_echo_with_streams(loop: asyncio.AbstractEventLoop) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main() -> list[bytes]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        replies = []
        for word in (b"one\n", b"two\n", b"three\n"):
            writer.write(word)
            await writer.drain()
            replies.append(await reader.readline())
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return replies

    replies = run_until_done(loop, loop.create_task(main()))
    assert replies == [b"ONE\n", b"TWO\n", b"THREE\n"]


def test_udp_echo(loop: asyncio.AbstractEventLoop) -> None:
    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.transport.sendto(data[::-1], addr)  # type: ignore[attr-defined]

    class Client(asyncio.DatagramProtocol):
        def __init__(self, done: asyncio.Future[bytes]) -> None:
            self.done = done

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.done.set_result(data)

    async def main() -> bytes:
        server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        addr = server.get_extra_info("sockname")
        done: asyncio.Future[bytes] = loop.create_future()
        client, _ = await loop.create_datagram_endpoint(lambda: Client(done), remote_addr=addr)
        client.sendto(b"abc")
        try:
            return await done
        finally:
            client.close()
            server.close()

    assert run_until_done(loop, loop.create_task(main())) == b"cba"


def test_subprocess_exec(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> tuple[bytes, int]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; print(sys.stdin.read().upper(), end='')",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate(b"piped")
        return out, await proc.wait()

    assert run_until_done(loop, loop.create_task(main())) == (b"PIPED", 0)
