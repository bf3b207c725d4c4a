"""Datagram endpoints (`create_datagram_endpoint`): UDP connected and unconnected, broadcast,
reuse_port, Unix datagram sockets, flow and error reporting, on asyncio and steploop."""

from __future__ import annotations

import asyncio
import errno
import socket
import sys
from typing import Any

import pytest
from net_helpers import no_leaked_fds, run, unix_path  # noqa: F401 (no_leaked_fds: autouse)


class Datagrams(asyncio.DatagramProtocol):
    """Records datagrams and errors; `next()` waits for the next datagram."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self.errors: list[Exception] = []
        self.error_seen: asyncio.Future[Exception] = loop.create_future()
        self.lost: asyncio.Future[Exception | None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)
        if not self.error_seen.done():
            self.error_seen.set_result(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)

    async def next(self) -> tuple[bytes, Any]:
        return await self.queue.get()


def test_unconnected_endpoints(loop: asyncio.AbstractEventLoop, loop_kind: str) -> None:
    async def main() -> None:
        a_tr, a = await loop.create_datagram_endpoint(
            lambda: Datagrams(loop), local_addr=("127.0.0.1", 0)
        )
        b_tr, b = await loop.create_datagram_endpoint(
            lambda: Datagrams(loop), local_addr=("127.0.0.1", 0)
        )
        assert isinstance(a_tr, asyncio.BaseTransport)
        if loop_kind == "steploop" or sys.version_info >= (3, 12):
            # asyncio's selector datagram transport is one since 3.12; steploop's always.
            assert isinstance(a_tr, asyncio.DatagramTransport)
        assert a_tr.get_extra_info("peername") is None
        a_name, b_name = a_tr.get_extra_info("sockname"), b_tr.get_extra_info("sockname")
        sock = a_tr.get_extra_info("socket")
        assert sock.type == socket.SOCK_DGRAM and sock.getsockname() == a_name
        a_tr.sendto(b"one", b_name)
        a_tr.sendto(memoryview(b"two"), b_name)
        assert await b.next() == (b"one", a_name)
        assert await b.next() == (b"two", a_name)
        b_tr.sendto(b"back", a_name)
        assert await a.next() == (b"back", b_name)
        assert a_tr.get_write_buffer_size() == 0  # type: ignore[attr-defined]
        a_tr.close()
        assert a_tr.is_closing()
        b_tr.close()
        assert await a.lost is None
        assert await b.lost is None

    run(loop, main())


def test_connected_endpoint(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        srv_tr, srv = await loop.create_datagram_endpoint(
            lambda: Datagrams(loop), local_addr=("127.0.0.1", 0)
        )
        addr = srv_tr.get_extra_info("sockname")
        cli_tr, cli = await loop.create_datagram_endpoint(lambda: Datagrams(loop), remote_addr=addr)
        assert cli_tr.get_extra_info("peername") == addr
        cli_tr.sendto(b"hello")
        data, cli_addr = await srv.next()
        assert data == b"hello"
        srv_tr.sendto(b"back", cli_addr)
        assert await cli.next() == (b"back", addr)
        cli_tr.sendto(b"explicit", addr)  # the connected address itself is allowed
        assert (await srv.next())[0] == b"explicit"
        with pytest.raises(ValueError, match="Invalid address"):
            cli_tr.sendto(b"x", ("127.0.0.1", 1))
        cli_tr.close()
        srv_tr.close()
        await cli.lost
        await srv.lost

    run(loop, main())


def test_connected_endpoint_gets_refused(loop: asyncio.AbstractEventLoop) -> None:
    # ICMP port unreachable on a connected socket comes back as error_received.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        addr = probe.getsockname()

    async def main() -> Exception:
        tr, proto = await loop.create_datagram_endpoint(lambda: Datagrams(loop), remote_addr=addr)
        tr.sendto(b"anyone?")
        exc = await proto.error_seen
        assert not tr.is_closing()  # an error is not fatal for a datagram endpoint
        tr.close()
        await proto.lost
        return exc

    assert isinstance(run(loop, main()), ConnectionRefusedError)


def test_oversized_datagram(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> Exception:
        tr, proto = await loop.create_datagram_endpoint(
            lambda: Datagrams(loop), local_addr=("127.0.0.1", 0)
        )
        tr.sendto(b"x" * 70_000, tr.get_extra_info("sockname"))
        exc = await proto.error_seen
        assert not tr.is_closing()
        tr.close()
        await proto.lost
        return exc

    exc = run(loop, main())
    assert isinstance(exc, OSError) and exc.errno == errno.EMSGSIZE


def test_large_datagram_arrives_whole(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> int:
        tr, proto = await loop.create_datagram_endpoint(
            lambda: Datagrams(loop), local_addr=("127.0.0.1", 0)
        )
        tr.sendto(b"y" * 60_000, tr.get_extra_info("sockname"))
        data, _ = await proto.next()
        tr.close()
        await proto.lost
        return len(data)

    assert run(loop, main()) == 60_000


def test_broadcast_and_reuse_port(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        tr, proto = await loop.create_datagram_endpoint(
            lambda: Datagrams(loop), local_addr=("127.0.0.1", 0), allow_broadcast=True
        )
        sock = tr.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST)
        port = tr.get_extra_info("sockname")[1]
        tr.close()
        await proto.lost

        one, p1 = await loop.create_datagram_endpoint(
            lambda: Datagrams(loop), local_addr=("127.0.0.1", port), reuse_port=True
        )
        two, p2 = await loop.create_datagram_endpoint(
            lambda: Datagrams(loop), local_addr=("127.0.0.1", port), reuse_port=True
        )
        assert one.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
        one.close()
        two.close()
        await p1.lost
        await p2.lost

    run(loop, main())


def test_reuse_address_is_refused(loop: asyncio.AbstractEventLoop) -> None:
    # Deprecated in 3.8, a ValueError in 3.9/3.10, gone (an unexpected keyword) since 3.11.
    with pytest.raises((ValueError, TypeError), match="reuse_address"):
        run(
            loop,
            loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0), reuse_address=True
            ),
        )


def test_endpoint_from_sock(loop: asyncio.AbstractEventLoop) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))

    async def main() -> bytes:
        tr, proto = await loop.create_datagram_endpoint(lambda: Datagrams(loop), sock=sock)
        assert not sock.getblocking()
        tr.sendto(b"self", sock.getsockname())
        data, _ = await proto.next()
        tr.close()
        await proto.lost
        return data

    assert run(loop, main()) == b"self"
    assert sock.fileno() == -1  # the transport owned and closed it


def test_unix_datagram_endpoints(loop: asyncio.AbstractEventLoop) -> None:
    with unix_path("srv") as srv_path, unix_path("cli") as cli_path:

        async def main() -> tuple[Any, Any]:
            srv_tr, srv = await loop.create_datagram_endpoint(
                lambda: Datagrams(loop), local_addr=srv_path, family=socket.AF_UNIX
            )
            cli_tr, cli = await loop.create_datagram_endpoint(
                lambda: Datagrams(loop),
                local_addr=cli_path,
                remote_addr=srv_path,
                family=socket.AF_UNIX,
            )
            cli_tr.sendto(b"unix datagram")
            data, addr = await srv.next()
            srv_tr.sendto(data.upper(), addr)
            reply = await cli.next()
            cli_tr.close()
            srv_tr.close()
            await cli.lost
            await srv.lost
            return (data, addr), reply

        (data, addr), reply = run(loop, main())
        assert (data, addr) == (b"unix datagram", cli_path)
        assert reply == (b"UNIX DATAGRAM", srv_path)


def test_datagram_received_raises(
    loop: asyncio.AbstractEventLoop, loop_errors: list[dict[str, Any]]
) -> None:
    # The exception escapes the reader callback: the loop logs it, the endpoint lives on.
    class Raising(Datagrams):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            super().datagram_received(data, addr)
            if data == b"raise":
                raise ZeroDivisionError("bad datagram handler")

    async def main() -> bytes:
        tr, proto = await loop.create_datagram_endpoint(
            lambda: Raising(loop), local_addr=("127.0.0.1", 0)
        )
        tr.sendto(b"raise", tr.get_extra_info("sockname"))
        await proto.next()
        tr.sendto(b"still open", tr.get_extra_info("sockname"))
        data, _ = await proto.next()
        tr.close()
        await proto.lost
        return data

    assert run(loop, main()) == b"still open"
    assert len(loop_errors) == 1
    assert loop_errors[0]["message"].startswith("Exception in callback")
    assert isinstance(loop_errors[0]["exception"], ZeroDivisionError)


def test_sendto_after_close_is_dropped(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        srv_tr, srv = await loop.create_datagram_endpoint(
            lambda: Datagrams(loop), local_addr=("127.0.0.1", 0)
        )
        tr, proto = await loop.create_datagram_endpoint(
            lambda: Datagrams(loop), remote_addr=srv_tr.get_extra_info("sockname")
        )
        tr.close()
        await proto.lost
        for _ in range(6):
            tr.sendto(b"late")
        srv_tr.close()
        await srv.lost

    run(loop, main())
    warnings = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert warnings == ["socket.send() raised exception.", "socket.send() raised exception."]
