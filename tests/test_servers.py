"""TCP and Unix stream connections and servers: `create_connection`, `create_server`, the
`Server` object, Unix sockets, `connect_accepted_socket`, `loop.sendfile` and streams, on asyncio
and steploop."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from asyncio import trsock
from typing import Any

import pytest
from net_helpers import Collector, no_leaked_fds, run, unix_path  # noqa: F401 (no_leaked_fds: autouse)


class Echo(asyncio.Protocol):
    """Server side: echo every byte, close on EOF."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def eof_received(self) -> bool | None:
        self.transport.close()
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def echo_roundtrip(
    loop: asyncio.AbstractEventLoop, transport: asyncio.Transport, proto: Collector, data: bytes
) -> bytes:
    transport.write(data)
    got = await proto.wait_for(len(data))
    return got


# ---------------------------------------------------------------- create_connection


def test_create_connection_and_server(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> tuple[bytes, list[str]]:
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        tr, proto = await loop.create_connection(lambda: Collector(loop), "127.0.0.1", port)
        got = await echo_roundtrip(loop, tr, proto, b"hello" * 1000)
        tr.write_eof()  # the server closes on EOF
        await proto.lost
        server.close()
        await server.wait_closed()
        return got, proto.events

    got, events = run(loop, main())
    assert got == b"hello" * 1000
    assert events == ["made", "eof", "lost"]


def test_create_connection_local_addr(loop: asyncio.AbstractEventLoop) -> None:
    local_port = free_port()

    async def main() -> tuple[Any, Any]:
        accepted: asyncio.Future[Any] = loop.create_future()

        class Server(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                accepted.set_result(transport.get_extra_info("peername"))

        server = await loop.create_server(Server, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        tr, _ = await loop.create_connection(
            asyncio.Protocol, "127.0.0.1", port, local_addr=("127.0.0.1", local_port)
        )
        peer = await accepted
        sockname = tr.get_extra_info("sockname")
        tr.close()
        server.close()
        await server.wait_closed()
        return peer, sockname

    peer, sockname = run(loop, main())
    assert peer == sockname == ("127.0.0.1", local_port)


def test_create_connection_sock(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> tuple[bytes, bool]:
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        sock = socket.socket()
        sock.connect(server.sockets[0].getsockname())  # a blocking connect, before the loop
        tr, proto = await loop.create_connection(lambda: Collector(loop), sock=sock)
        got = await echo_roundtrip(loop, tr, proto, b"via sock=")
        same = tr.get_extra_info("socket").fileno() == sock.fileno()
        tr.close()
        await proto.lost
        server.close()
        await server.wait_closed()
        return got, same

    assert run(loop, main()) == (b"via sock=", True)


def test_create_connection_argument_errors(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        with (
            socket.socket() as sock,
            pytest.raises(ValueError, match="host/port and sock can not be specified"),
        ):
            await loop.create_connection(
                asyncio.Protocol,
                "127.0.0.1",
                1,
                sock=sock,  # type: ignore[call-overload]
            )
        with pytest.raises(ValueError, match="host and port was not specified"):
            await loop.create_connection(asyncio.Protocol)
        with pytest.raises(ValueError, match="server_hostname is only meaningful with ssl"):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", 1, server_hostname="x")

    run(loop, main())


@pytest.mark.parametrize("delay", [None, 0.25], ids=["sequential", "happy_eyeballs"])
def test_create_connection_tries_every_address(
    loop: asyncio.AbstractEventLoop, delay: float | None
) -> None:
    # The host resolves to two addresses; nothing listens on the first one.
    async def main() -> tuple[Any, list[str]]:
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        asked: list[str] = []

        async def getaddrinfo(host: str, port: int, **kwargs: Any) -> list[Any]:
            asked.append(host)
            tcp = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "")
            return [(*tcp, ("127.0.0.2", port)), (*tcp, ("127.0.0.1", port))]

        loop.getaddrinfo = getaddrinfo  # type: ignore[method-assign,assignment]
        try:
            tr, _ = await loop.create_connection(
                asyncio.Protocol, "two.example", port, happy_eyeballs_delay=delay
            )
        finally:
            del loop.getaddrinfo
        peer = tr.get_extra_info("peername")
        tr.close()
        server.close()
        await server.wait_closed()
        return peer, asked

    peer, asked = run(loop, main())
    assert asked == ["two.example"]
    assert peer[0] == "127.0.0.1"


def test_create_connection_refused(loop: asyncio.AbstractEventLoop) -> None:
    port = free_port()
    with pytest.raises(ConnectionRefusedError):
        run(loop, loop.create_connection(asyncio.Protocol, "127.0.0.1", port))


def test_create_connection_refused_on_every_address(loop: asyncio.AbstractEventLoop) -> None:
    port = free_port()

    async def main() -> None:
        async def getaddrinfo(host: str, port: int, **kwargs: Any) -> list[Any]:
            tcp = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "")
            return [(*tcp, ("127.0.0.2", port)), (*tcp, ("127.0.0.1", port))]

        loop.getaddrinfo = getaddrinfo  # type: ignore[method-assign,assignment]
        try:
            await loop.create_connection(asyncio.Protocol, "two.example", port)
        finally:
            del loop.getaddrinfo

    with pytest.raises(OSError, match="Multiple exceptions: .*Connect call failed"):
        run(loop, main())


def test_create_connection_unresolvable(loop: asyncio.AbstractEventLoop) -> None:
    with pytest.raises(socket.gaierror):
        run(loop, loop.create_connection(asyncio.Protocol, "no-such-host.invalid", 80))


# ---------------------------------------------------------------- create_server / Server


def test_server_object(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=5)
        assert isinstance(server, asyncio.AbstractServer)
        assert server.get_loop() is loop
        assert server.is_serving()
        (sock,) = server.sockets
        assert isinstance(sock, trsock.TransportSocket)
        assert sock.family == socket.AF_INET and sock.type == socket.SOCK_STREAM
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        server.close()
        assert not server.is_serving()
        assert server.sockets == ()
        await server.wait_closed()
        server.close()  # idempotent

    run(loop, main())


def test_server_several_hosts(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> list[tuple[str, int]]:
        server = await loop.create_server(Echo, ["127.0.0.1", "localhost"], free_port())
        names = sorted(s.getsockname()[:2] for s in server.sockets)
        for host, port in names:
            tr, proto = await loop.create_connection(lambda: Collector(loop), host, port)
            assert await echo_roundtrip(loop, tr, proto, b"ping") == b"ping"
            tr.close()
            await proto.lost
        server.close()
        await server.wait_closed()
        return names

    names = run(loop, main())
    assert len(names) >= 1
    assert all(host in ("127.0.0.1", "::1") for host, _ in names)


def test_server_reuse_port(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> int:
        port = free_port()
        a = await loop.create_server(Echo, "127.0.0.1", port, reuse_port=True)
        b = await loop.create_server(Echo, "127.0.0.1", port, reuse_port=True)
        assert a.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
        for server in (a, b):
            server.close()
            await server.wait_closed()
        return port

    run(loop, main())


def test_server_address_in_use(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        a = await loop.create_server(Echo, "127.0.0.1", 0)
        port = a.sockets[0].getsockname()[1]
        try:
            with pytest.raises(OSError, match="address already in use"):
                await loop.create_server(Echo, "127.0.0.1", port)
        finally:
            a.close()
            await a.wait_closed()

    run(loop, main())


def test_server_start_serving_false(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> list[str]:
        log: list[str] = []

        class Server(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                log.append("accepted")
                transport.close()

        server = await loop.create_server(Server, "127.0.0.1", 0, start_serving=False)
        assert not server.is_serving()
        addr = server.sockets[0].getsockname()
        with pytest.raises(ConnectionRefusedError):  # bound, but not listening yet
            await loop.create_connection(asyncio.Protocol, *addr)
        log.append("started")
        await server.start_serving()
        assert server.is_serving()
        client = socket.create_connection(addr)
        while log[-1:] != ["accepted"]:
            await asyncio.sleep(0)
        client.close()
        server.close()
        await server.wait_closed()
        return log

    assert run(loop, main()) == ["started", "accepted"]


def test_server_serve_forever_cancelled_closes(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        server = await loop.create_server(Echo, "127.0.0.1", 0, start_serving=False)
        task = loop.create_task(server.serve_forever())
        await asyncio.sleep(0)
        assert server.is_serving()
        with pytest.raises(RuntimeError, match="is already being awaited on serve_forever"):
            await server.serve_forever()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not server.is_serving()
        await server.wait_closed()
        with pytest.raises(RuntimeError, match="is closed"):
            await server.serve_forever()

    run(loop, main())


def test_server_async_with(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> bool:
        async with await loop.create_server(Echo, "127.0.0.1", 0) as server:
            assert server.is_serving()
        return server.is_serving()

    assert run(loop, main()) is False


def test_server_close_leaves_connections_open(loop: asyncio.AbstractEventLoop) -> None:
    # Server.close stops listening; accepted connections live on (3.11 semantics).
    async def main() -> bytes:
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        addr = server.sockets[0].getsockname()
        tr, proto = await loop.create_connection(lambda: Collector(loop), *addr)
        await asyncio.sleep(0)
        server.close()
        got = await echo_roundtrip(loop, tr, proto, b"still here")
        tr.close()
        await proto.lost
        await server.wait_closed()
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(asyncio.Protocol, *addr)
        return got

    assert run(loop, main()) == b"still here"


def test_server_protocol_factory_raises(
    loop: asyncio.AbstractEventLoop, loop_errors: list[dict[str, Any]]
) -> None:
    # The error goes to the exception handler (in debug mode only), the server serves on.
    async def main() -> bytes:
        calls = 0

        def factory() -> asyncio.Protocol:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ZeroDivisionError("bad factory")
            return Echo()

        server = await loop.create_server(factory, "127.0.0.1", 0)
        addr = server.sockets[0].getsockname()
        _, w = await asyncio.open_connection(*addr)
        while calls < 1:
            await asyncio.sleep(0)
        w.close()
        await w.wait_closed()
        r, w = await asyncio.open_connection(*addr)
        w.write(b"second")
        got = await r.readexactly(6)
        w.close()
        await w.wait_closed()
        server.close()
        await server.wait_closed()
        return got

    assert run(loop, main()) == b"second"
    if loop.get_debug():
        message = "Error on transport creation for incoming connection"
        assert [c["message"] for c in loop_errors] == [message]
        assert isinstance(loop_errors[0]["exception"], ZeroDivisionError)
    else:
        assert loop_errors == []


def test_server_accept_out_of_fds(
    loop: asyncio.AbstractEventLoop,
    loop_errors: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # EMFILE on accept: logged, the server stops accepting for a while, then serves again.
    import errno

    monkeypatch.setattr(asyncio.constants, "ACCEPT_RETRY_DELAY", 0.01)  # type: ignore[attr-defined]
    real_accept = socket.socket.accept
    failures = [OSError(errno.EMFILE, "Too many open files")]

    def accept(self: socket.socket) -> tuple[socket.socket, Any]:
        if failures:
            raise failures.pop()
        return real_accept(self)

    async def main() -> bytes:
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        addr = server.sockets[0].getsockname()
        monkeypatch.setattr(socket.socket, "accept", accept)
        r, w = await asyncio.open_connection(*addr)
        w.write(b"served")
        got = await r.readexactly(6)
        w.close()
        await w.wait_closed()
        server.close()
        await server.wait_closed()
        return got

    assert run(loop, main()) == b"served"
    assert [c["message"] for c in loop_errors] == ["socket.accept() out of system resource"]
    assert loop_errors[0]["exception"].errno == errno.EMFILE


# ---------------------------------------------------------------- Unix sockets


def test_unix_connection_and_server(loop: asyncio.AbstractEventLoop) -> None:
    with unix_path() as path:

        async def main() -> tuple[bytes, Any, Any]:
            server = await loop.create_unix_server(Echo, path)
            assert server.sockets[0].family == socket.AF_UNIX
            tr, proto = await loop.create_unix_connection(lambda: Collector(loop), path)
            got = await echo_roundtrip(loop, tr, proto, b"over unix")
            peer = tr.get_extra_info("peername")
            tr.close()
            await proto.lost
            server.close()
            await server.wait_closed()
            return got, peer, os.path.exists(path)

        got, peer, exists = run(loop, main())
        assert got == b"over unix"
        assert peer == path
        assert exists  # 3.11 leaves the path behind; a new server replaces a stale socket


def test_unix_server_replaces_stale_socket(loop: asyncio.AbstractEventLoop) -> None:
    with unix_path() as path:
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(path)
        stale.close()

        async def main() -> None:
            server = await loop.create_unix_server(Echo, path)
            server.close()
            await server.wait_closed()

        run(loop, main())


def test_unix_server_sock_and_start_serving(loop: asyncio.AbstractEventLoop) -> None:
    with unix_path() as path:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path)

        async def main() -> bytes:
            server = await loop.create_unix_server(Echo, sock=sock, start_serving=False)
            assert not server.is_serving()
            await server.start_serving()
            r, w = await asyncio.open_unix_connection(path)
            w.write(b"unix stream")
            got = await r.readexactly(11)
            w.close()
            await w.wait_closed()
            server.close()
            await server.wait_closed()
            return got

        assert run(loop, main()) == b"unix stream"


def test_unix_connection_missing_path(loop: asyncio.AbstractEventLoop) -> None:
    with unix_path() as path, pytest.raises(FileNotFoundError):
        run(loop, loop.create_unix_connection(asyncio.Protocol, path))


def test_connect_accepted_socket(loop: asyncio.AbstractEventLoop) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname())
    conn, _ = listener.accept()
    listener.close()

    async def main() -> bytes:
        tr, _ = await loop.connect_accepted_socket(Echo, conn)
        client.setblocking(False)
        await loop.sock_sendall(client, b"accepted elsewhere")
        got = await loop.sock_recv(client, 100)
        client.shutdown(socket.SHUT_WR)
        assert await loop.sock_recv(client, 100) == b""  # Echo closes on EOF
        assert tr.is_closing()
        return got

    try:
        assert run(loop, main()) == b"accepted elsewhere"
    finally:
        client.close()


# ---------------------------------------------------------------- loop.sendfile


@pytest.mark.parametrize("fallback", [True, False])
def test_loop_sendfile(loop: asyncio.AbstractEventLoop, fallback: bool) -> None:
    data = os.urandom(300_000)
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.seek(0)

        async def main() -> tuple[int, bytes]:
            got: asyncio.Future[bytes] = loop.create_future()

            class Sink(asyncio.Protocol):
                buf = bytearray()

                def data_received(self, chunk: bytes) -> None:
                    self.buf += chunk

                def eof_received(self) -> bool | None:
                    got.set_result(bytes(self.buf))
                    return None

            server = await loop.create_server(Sink, "127.0.0.1", 0)
            tr, proto = await loop.create_connection(
                lambda: Collector(loop), *server.sockets[0].getsockname()
            )
            tr.write(b"head:")
            sent = await loop.sendfile(tr, f, offset=10, count=200_000, fallback=fallback)
            tr.write(b":tail")
            tr.write_eof()
            body = await got
            tr.close()
            await proto.lost
            server.close()
            await server.wait_closed()
            return sent, body

        sent, body = run(loop, main())
        assert sent == 200_000
        assert body == b"head:" + data[10:200_010] + b":tail"
        assert f.tell() == 200_010


def test_loop_sendfile_on_closing_transport(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        tr, proto = await loop.create_connection(
            lambda: Collector(loop), *server.sockets[0].getsockname()
        )
        tr.close()
        with tempfile.TemporaryFile() as f, pytest.raises(RuntimeError, match="is closing"):
            await loop.sendfile(tr, f)
        await proto.lost
        server.close()
        await server.wait_closed()

    run(loop, main())


# ---------------------------------------------------------------- streams


def test_streams_readexactly_readuntil_eof(loop: asyncio.AbstractEventLoop) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"line one\nrecord|12345")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main() -> list[Any]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
        out: list[Any] = [
            await reader.readline(),
            await reader.readuntil(b"|"),
            await reader.readexactly(3),
        ]
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await reader.readexactly(10)
        out.append(info.value.partial)
        out.append(reader.at_eof())
        assert writer.get_extra_info("peername") == server.sockets[0].getsockname()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return out

    assert run(loop, main()) == [b"line one\n", b"record|", b"123", b"45", True]


def test_unix_streams(loop: asyncio.AbstractEventLoop) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write((await reader.readline()).upper())
        writer.close()

    with unix_path() as path:

        async def main() -> bytes:
            server = await asyncio.start_unix_server(handle, path)
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(b"shout\n")
            got = await reader.read()
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
            return got

        assert run(loop, main()) == b"SHOUT\n"


def test_many_concurrent_stream_clients(loop: asyncio.AbstractEventLoop) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def client(addr: Any, i: int) -> bool:
        reader, writer = await asyncio.open_connection(*addr)
        payload = str(i).encode() * 20_000
        writer.write(payload)
        writer.write_eof()
        got = await reader.read()
        writer.close()
        await writer.wait_closed()
        return got == payload

    async def main() -> list[bool]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        addr = server.sockets[0].getsockname()
        results = await asyncio.gather(*(client(addr, i) for i in range(50)))
        server.close()
        await server.wait_closed()
        return list(results)

    assert run(loop, main()) == [True] * 50


EMFILE_SCRIPT = """
import asyncio, os, resource, socket, sys
sys.path.insert(0, sys.argv[2])
from loop_helpers import new_loop_of_kind

# Long enough that the retry never lands while the fds are still used up (loaded machines).
asyncio.constants.ACCEPT_RETRY_DELAY = 0.5
errors = []

async def main():
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: errors.append(context["message"]))
    server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, backlog=200)
    addr = server.sockets[0].getsockname()
    # Leave room for 30 more fds: the clients below use them up, accept() hits EMFILE.
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 30, 4096))
    clients = []
    try:
        for _ in range(40):
            s = socket.socket()
            s.setblocking(False)
            clients.append(s)
            try:
                s.connect(addr)
            except BlockingIOError:
                pass
    except OSError:
        pass
    for _ in range(50):
        await asyncio.sleep(0)
    for s in clients:
        s.close()
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    reader, writer = await asyncio.open_connection(*addr)  # served again
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()

loop = new_loop_of_kind(sys.argv[1])
loop.run_until_complete(main())
loop.close()
print(sorted(set(errors)))
"""


def test_server_accept_hits_the_fd_limit(loop_kind: str) -> None:
    # A real EMFILE (RLIMIT_NOFILE lowered, in a child process): logged as asyncio logs it,
    # and the server accepts again once fds are free.
    import subprocess
    import sys

    tests_dir = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.run(
        [sys.executable, "-c", EMFILE_SCRIPT, loop_kind, tests_dir],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['socket.accept() out of system resource']"
