"""Stream transports: types, `get_extra_info`, reading and writing flow control, EOF, abort and
close, `BufferedProtocol`, and faults (reset by peer, write after close, callbacks that raise,
fds closed behind the loop's back), on asyncio and steploop."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from asyncio import trsock
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from net_helpers import Collector, no_leaked_fds, run  # noqa: F401 (no_leaked_fds: autouse)


class Pair:
    """Both ends of one TCP connection made by create_server + create_connection."""

    client: asyncio.Transport
    client_proto: Collector
    server_proto: Collector

    @property
    def server(self) -> asyncio.Transport:
        assert self.server_proto.transport is not None
        return self.server_proto.transport


@asynccontextmanager
async def tcp_pair(
    loop: asyncio.AbstractEventLoop,
    server_factory: Callable[[], asyncio.BaseProtocol] | None = None,
    client_factory: Callable[[], asyncio.BaseProtocol] | None = None,
) -> AsyncIterator[Pair]:
    pair = Pair()
    made: asyncio.Future[None] = loop.create_future()

    def make_server_proto() -> asyncio.BaseProtocol:
        proto = server_factory() if server_factory else Collector(loop)
        if isinstance(proto, Collector):
            pair.server_proto = proto
            proto.made.add_done_callback(lambda _: made.set_result(None))
        else:
            made.set_result(None)
        return proto

    server = await loop.create_server(make_server_proto, "127.0.0.1", 0)
    tr, proto = await loop.create_connection(
        client_factory or (lambda: Collector(loop)), *server.sockets[0].getsockname()
    )
    assert isinstance(tr, asyncio.Transport)
    pair.client = tr
    pair.client_proto = proto  # type: ignore[assignment]
    await made
    server.close()
    try:
        yield pair
    finally:
        for end in (pair.client, getattr(getattr(pair, "server_proto", None), "transport", None)):
            if end is not None:
                end.close()
        await asyncio.sleep(0)
        await server.wait_closed()


# ---------------------------------------------------------------- types and extra info


def test_transport_types_and_extra_info(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        async with tcp_pair(loop) as p:
            for tr in (p.client, p.server):
                assert isinstance(tr, asyncio.Transport)
                assert isinstance(tr, asyncio.ReadTransport)
                assert isinstance(tr, asyncio.WriteTransport)
                assert tr.get_protocol() in (p.client_proto, p.server_proto)
                sock = tr.get_extra_info("socket")
                assert isinstance(sock, trsock.TransportSocket)
                assert sock.family == socket.AF_INET
                assert tr.get_extra_info("nonexistent") is None
                assert tr.get_extra_info("nonexistent", "default") == "default"
                assert tr.get_extra_info("sslcontext") is None
                assert tr.get_extra_info("ssl_object") is None
                assert tr.get_extra_info("peercert") is None
                assert tr.get_extra_info("cipher") is None
                assert tr.get_extra_info("compression") is None
            assert p.client.get_extra_info("peername") == p.server.get_extra_info("sockname")
            assert p.client.get_extra_info("sockname") == p.server.get_extra_info("peername")
            assert not p.client.is_closing()
            assert p.client.can_write_eof()

    run(loop, main())


def test_set_protocol(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> bytes:
        async with tcp_pair(loop) as p:
            other = Collector(loop)
            p.server.set_protocol(other)
            assert p.server.get_protocol() is other
            p.client.write(b"to the new protocol")
            got = await other.wait_for(19)
            assert p.server_proto.data == b""
            return got

    assert run(loop, main()) == b"to the new protocol"


def test_set_protocol_between_messages(loop: asyncio.AbstractEventLoop) -> None:
    # The protocol is replaced after the transport has delivered data to the first one
    # (steploop keeps the transport's state between messages while it is unchanged).
    async def main() -> tuple[bytes, bytes]:
        async with tcp_pair(loop) as p:
            p.client.write(b"one")
            await p.server_proto.wait_for(3)
            p.server.write(b"ack")
            await p.client_proto.wait_for(3)
            other = Collector(loop)
            p.server.set_protocol(other)
            p.client.write(b"two")
            got = await other.wait_for(3)
            return bytes(p.server_proto.data), got

    assert run(loop, main()) == (b"one", b"two")


class Chunks(Collector):
    """Records the size of every `data_received` chunk."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.sizes: list[int] = []

    def data_received(self, data: bytes) -> None:
        self.sizes.append(len(data))
        super().data_received(data)


def test_max_size_set_between_messages(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `max_size` bounds each read: set on the transport, then on its class, after data has
    # been read with the default.
    async def main() -> tuple[list[int], list[int], list[int]]:
        async with tcp_pair(loop, server_factory=lambda: Chunks(loop)) as p:
            proto = p.server_proto
            assert isinstance(proto, Chunks)
            p.client.write(b"x" * 10)
            await proto.wait_for(10)
            first = list(proto.sizes)
            p.server.max_size = 4  # type: ignore[attr-defined]
            p.client.write(b"y" * 10)
            await proto.wait_for(20)
            on_instance = proto.sizes[len(first) :]
            del p.server.max_size  # type: ignore[attr-defined]
            monkeypatch.setattr(type(p.server), "max_size", 3)
            p.client.write(b"z" * 10)
            await proto.wait_for(30)
            on_class = proto.sizes[len(first) + len(on_instance) :]
            assert bytes(proto.data) == b"x" * 10 + b"y" * 10 + b"z" * 10
            return first, on_instance, on_class

    first, on_instance, on_class = run(loop, main())
    assert first == [10]
    assert max(on_instance) <= 4 and sum(on_instance) == 10
    assert max(on_class) <= 3 and sum(on_class) == 10


def test_write_after_abort_of_a_used_transport(loop: asyncio.AbstractEventLoop) -> None:
    # Writes on a transport that has written before are dropped once it is aborted.
    async def main() -> tuple[bytes, int]:
        async with tcp_pair(loop) as p:
            p.client.write(b"before")
            await p.server_proto.wait_for(6)
            p.client.abort()
            p.client.write(b"after")
            p.client.write(b"after")
            await p.client_proto.lost
            await p.server_proto.lost
            return bytes(p.server_proto.data), p.client._conn_lost  # type: ignore[attr-defined]

    assert run(loop, main()) == (b"before", 3)


# ---------------------------------------------------------------- reading


def test_pause_and_resume_reading(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> tuple[bytes, bytes]:
        async with tcp_pair(loop) as p:
            assert p.server.is_reading()
            p.server.pause_reading()
            assert not p.server.is_reading()
            p.server.pause_reading()  # idempotent
            p.client.write(b"held back")
            for _ in range(10):
                await asyncio.sleep(0)
            while_paused = bytes(p.server_proto.data)
            p.server.resume_reading()
            assert p.server.is_reading()
            p.server.resume_reading()
            return while_paused, await p.server_proto.wait_for(9)

    assert run(loop, main()) == (b"", b"held back")


def test_pause_reading_holds_back_eof(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> list[str]:
        async with tcp_pair(loop) as p:
            p.server.pause_reading()
            p.client.write_eof()
            for _ in range(10):
                await asyncio.sleep(0)
            assert "eof" not in p.server_proto.events
            p.server.resume_reading()
            await p.server_proto.eof
            return list(p.server_proto.events)

    assert run(loop, main()) == ["made", "eof"]


class Buffered(asyncio.BufferedProtocol):
    """A BufferedProtocol that receives into one preallocated buffer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self.buf = bytearray(size)
        self.used = 0
        self.sizes: list[int] = []
        self.hints: list[int] = []
        self.eof = loop.create_future()
        self.lost = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        self.hints.append(sizehint)
        return memoryview(self.buf)[self.used :]

    def buffer_updated(self, nbytes: int) -> None:
        self.sizes.append(nbytes)
        self.used += nbytes

    def eof_received(self) -> bool | None:
        self.eof.set_result(None)
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.set_result(exc)


def test_buffered_protocol(loop: asyncio.AbstractEventLoop) -> None:
    data = os.urandom(200_000)

    async def main() -> Buffered:
        proto = Buffered(loop, len(data) + 1)  # never full: an empty buffer is an error
        async with tcp_pair(loop, server_factory=lambda: proto) as p:
            p.client.write(data)
            p.client.write_eof()
            await proto.eof
        await proto.lost
        return proto

    proto = run(loop, main())
    assert bytes(proto.buf[: proto.used]) == data
    assert sum(proto.sizes) == len(data)
    assert all(hint == -1 or hint > 0 for hint in proto.hints)


def test_buffered_protocol_empty_buffer_is_an_error(
    loop: asyncio.AbstractEventLoop, loop_errors: list[dict[str, Any]]
) -> None:
    class Empty(Buffered):
        def get_buffer(self, sizehint: int) -> memoryview:
            return memoryview(bytearray())

    async def main() -> BaseException | None:
        proto = Empty(loop, 0)
        async with tcp_pair(loop, server_factory=lambda: proto) as p:
            p.client.write(b"x")
            exc: BaseException | None = await proto.lost
            return exc

    exc = run(loop, main())
    assert isinstance(exc, RuntimeError)
    assert str(exc) == "get_buffer() returned an empty buffer"
    assert [c["message"] for c in loop_errors] == [
        "Fatal error: protocol.get_buffer() call failed."
    ]


# ---------------------------------------------------------------- writing and flow control


def test_write_buffer_limits(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        async with tcp_pair(loop) as p:
            tr = p.client
            assert tr.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
            tr.set_write_buffer_limits(high=1000)
            assert tr.get_write_buffer_limits() == (250, 1000)
            tr.set_write_buffer_limits(high=100, low=10)
            assert tr.get_write_buffer_limits() == (10, 100)
            with pytest.raises(ValueError, match="high.*must be >= low"):
                tr.set_write_buffer_limits(high=1, low=2)
            assert tr.get_write_buffer_size() == 0

    run(loop, main())


def test_pause_and_resume_writing(loop: asyncio.AbstractEventLoop) -> None:
    # The peer does not read: the client's buffer fills, the protocol is told to pause; once
    # the peer reads everything, it is told to resume.
    chunk = b"x" * 65536

    async def main() -> tuple[list[str], int]:
        async with tcp_pair(loop) as p:
            p.server.pause_reading()
            tr = p.client
            tr.set_write_buffer_limits(high=4 * 65536, low=65536)
            written = 0
            while "pause_writing" not in p.client_proto.events:
                tr.write(chunk)
                written += len(chunk)
                await asyncio.sleep(0)
                assert written < 200 * 1024 * 1024, "pause_writing never came"
            assert tr.get_write_buffer_size() > 4 * 65536
            p.server.resume_reading()
            await p.server_proto.wait_for(written)
            while "resume_writing" not in p.client_proto.events:
                await asyncio.sleep(0)
            assert tr.get_write_buffer_size() <= 65536
            return list(p.client_proto.events), len(p.server_proto.data) - written

    events, extra = run(loop, main())
    assert events == ["made", "pause_writing", "resume_writing"]
    assert extra == 0


def test_writelines_and_memoryview(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> bytes:
        async with tcp_pair(loop) as p:
            p.client.writelines([b"a", bytearray(b"b"), memoryview(b"cd")])
            p.client.write(b"")
            p.client.write(memoryview(b"xyz")[1:])
            return await p.server_proto.wait_for(6)

    assert run(loop, main()) == b"abcdyz"


def test_write_kinds_interleaved_keep_order(loop: asyncio.AbstractEventLoop) -> None:
    # bytes (steploop's native write), bytearray, memoryview and keyword calls (asyncio's
    # write), with the buffer empty and with it full (the peer paused reading).
    big = os.urandom(4_000_000)

    async def main() -> bytes:
        async with tcp_pair(loop) as p:
            tr = p.client
            tr.write(b"a")
            tr.write(bytearray(b"b"))
            tr.write(data=b"c")
            p.server.pause_reading()
            tr.write(big)  # partial send: the rest is buffered
            assert tr.get_write_buffer_size() > 0
            tr.write(b"d")  # appended to the buffer, after the rest of big
            tr.write(memoryview(b"xe")[1:])
            p.server.resume_reading()
            return await p.server_proto.wait_for(len(big) + 5)

    assert run(loop, main()) == b"abc" + big + b"de"


def test_write_signature_errors(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        async with tcp_pair(loop) as p:
            tr: Any = p.client
            with pytest.raises(TypeError, match=r"write\(\) missing 1 required positional"):
                tr.write()
            with pytest.raises(TypeError, match=r"write\(\) takes 2 positional arguments"):
                tr.write(b"a", b"b")
            with pytest.raises(TypeError, match=r"write\(\) got an unexpected keyword"):
                tr.write(b"a", flags=0)

    run(loop, main())


def test_write_to_reset_peer_is_a_fatal_error(loop: asyncio.AbstractEventLoop) -> None:
    # The client does not read, so the reset shows up in write()'s first send: connection_lost
    # gets the error, later writes are dropped (asyncio's _fatal_error, then _conn_lost).
    async def main() -> tuple[bool, BaseException | None, int]:
        async with tcp_pair(loop) as p:
            p.client.pause_reading()
            sock = p.server.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            p.server.abort()
            await p.server_proto.lost
            p.client.write(b"x" * 1000)
            closing = p.client.is_closing()
            exc = await p.client_proto.lost
            p.client.write(b"dropped")
            return closing, exc, p.client.get_write_buffer_size()

    closing, exc, size = run(loop, main())
    assert closing
    assert isinstance(exc, (ConnectionResetError, BrokenPipeError))
    assert size == 0


def test_steploop_transport_is_asyncios_class_with_a_native_write(
    loop: asyncio.AbstractEventLoop,
) -> None:
    from asyncio import selector_events

    async def main() -> type:
        async with tcp_pair(loop) as p:
            return type(p.client)

    cls = run(loop, main())
    assert issubclass(cls, selector_events._SelectorSocketTransport)  # type: ignore[attr-defined]
    assert cls.__name__ == "_SelectorSocketTransport"
    if type(loop).__module__.startswith("steploop"):  # the method descriptor of the extension
        assert type(cls.write).__name__ == "method_descriptor"
        assert cls.write.__qualname__ == "_SelectorSocketTransport.write"


def test_write_wrong_type(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        async with tcp_pair(loop) as p:
            with pytest.raises(TypeError, match="data argument must be a bytes-like object"):
                p.client.write("text")  # type: ignore[arg-type]

    run(loop, main())


def test_write_eof_then_peer_replies(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> tuple[bytes, list[str]]:
        async with tcp_pair(loop, server_factory=lambda: Collector(loop, keep_open=True)) as p:
            p.client.write(b"request")
            p.client.write_eof()
            p.client.write_eof()  # idempotent
            assert not p.client.is_closing()
            await p.server_proto.eof
            p.server.write(b"reply after eof")
            got = await p.client_proto.wait_for(15)
            with pytest.raises(RuntimeError, match="Cannot call write\\(\\) after write_eof\\(\\)"):
                p.client.write(b"more")
            return got, list(p.server_proto.events)

    got, events = run(loop, main())
    assert got == b"reply after eof"
    assert events == ["made", "eof"]


def test_close_flushes_then_closes(loop: asyncio.AbstractEventLoop) -> None:
    data = os.urandom(2_000_000)

    async def main() -> tuple[bool, BaseException | None, bytes]:
        async with tcp_pair(loop) as p:
            p.client.write(data)
            p.client.close()
            closing = p.client.is_closing()
            p.client.close()  # idempotent
            exc = await p.client_proto.lost
            await p.server_proto.eof
            return closing, exc, bytes(p.server_proto.data)

    closing, exc, got = run(loop, main())
    assert closing and exc is None
    assert got == data


def test_abort_discards_buffer(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> tuple[BaseException | None, list[str], BaseException | None]:
        async with tcp_pair(loop) as p:
            p.server.pause_reading()
            p.client.write(os.urandom(8_000_000))  # more than the socket buffers hold
            assert p.client.get_write_buffer_size() > 0
            p.client.abort()
            assert p.client.is_closing()
            exc = await p.client_proto.lost
            p.server.resume_reading()
            peer_exc = await p.server_proto.lost
            return exc, list(p.client_proto.events), peer_exc

    exc, events, peer_exc = run(loop, main())
    assert exc is None
    assert events == ["made", "pause_writing", "lost"]  # no resume_writing after abort
    assert peer_exc is None or isinstance(peer_exc, ConnectionResetError)


# ---------------------------------------------------------------- faults


def test_write_after_close_is_dropped_and_logged(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with tcp_pair(loop) as p:
            p.client.close()
            await p.client_proto.lost
            with caplog.at_level(logging.WARNING, logger="asyncio"):
                for _ in range(6):
                    p.client.write(b"into the void")

    run(loop, main())
    warnings = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert warnings == ["socket.send() raised exception.", "socket.send() raised exception."]


def test_peer_reset_while_writing(loop: asyncio.AbstractEventLoop) -> None:
    # The peer goes away with RST (SO_LINGER 0) while we still have data to write.
    async def main() -> BaseException | None:
        async with tcp_pair(loop) as p:
            p.server.pause_reading()
            p.client.write(os.urandom(8_000_000))
            sock = p.server.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            p.server.abort()
            exc: BaseException | None = await p.client_proto.lost
            return exc

    exc = run(loop, main())
    assert isinstance(exc, (ConnectionResetError, BrokenPipeError))


def test_peer_reset_while_reading(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> BaseException | None:
        async with tcp_pair(loop) as p:
            sock = p.server.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            p.server.abort()
            exc: BaseException | None = await p.client_proto.lost
            return exc

    exc = run(loop, main())
    assert isinstance(exc, ConnectionResetError)


def test_stream_write_to_reset_peer(loop: asyncio.AbstractEventLoop) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        writer.transport.abort()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
        with pytest.raises(ConnectionResetError):
            await reader.read()
        with pytest.raises(ConnectionResetError):
            for _ in range(100):
                writer.write(b"x" * 65536)
                await writer.drain()
        writer.close()
        with pytest.raises(ConnectionResetError):
            await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_data_received_raises(
    loop: asyncio.AbstractEventLoop, loop_errors: list[dict[str, Any]]
) -> None:
    class Raising(Collector):
        def data_received(self, data: bytes) -> None:
            raise ZeroDivisionError("bad protocol")

    async def main() -> tuple[BaseException | None, BaseException | None]:
        async with tcp_pair(loop, server_factory=lambda: Raising(loop)) as p:
            p.client.write(b"boom")
            exc = await p.server_proto.lost
            peer = await p.client_proto.lost
            return exc, peer

    exc, peer = run(loop, main())
    assert isinstance(exc, ZeroDivisionError)
    assert peer is None or isinstance(peer, ConnectionResetError)
    assert [c["message"] for c in loop_errors] == [
        "Fatal error: protocol.data_received() call failed."
    ]
    assert loop_errors[0]["exception"] is exc


def test_reader_handle_repr(loop: asyncio.AbstractEventLoop) -> None:
    """The socket's reader prints as asyncio's bound `_read_ready` (steploop reads natively,
    crates/steploop-py/src/transport.rs, under the same name)."""

    async def main() -> str:
        async with tcp_pair(loop) as p:
            fd = p.server.get_extra_info("socket").fileno()
            key = loop._selector.get_key(fd)  # type: ignore[attr-defined]
            return repr(key.data[0])

    # (debug mode appends where the handle was created)
    assert run(loop, main()).startswith("<Handle _SelectorSocketTransport._read_ready()")


def test_switch_to_buffered_protocol_and_back(loop: asyncio.AbstractEventLoop) -> None:
    """set_protocol() between a Protocol and a BufferedProtocol on a live connection: each
    receives through its own path (asyncio switches `_read_ready_cb`)."""

    async def main() -> tuple[bytes, bytes, bytes]:
        async with tcp_pair(loop) as p:
            p.client.write(b"plain ")
            first = await p.server_proto.wait_for(6)
            buffered = Buffered(loop, 64)
            p.server.set_protocol(buffered)
            p.client.write(b"buffered")
            while buffered.used < 8:
                await asyncio.sleep(0)
            plain = Collector(loop)
            p.server.set_protocol(plain)
            p.client.write(b"plain again")
            return first, bytes(buffered.buf[: buffered.used]), await plain.wait_for(11)

    assert run(loop, main()) == (b"plain ", b"buffered", b"plain again")


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_data_received_interrupt_escapes(
    loop: asyncio.AbstractEventLoop, exc_type: type[BaseException]
) -> None:
    """KeyboardInterrupt and SystemExit from data_received() leave the loop, as asyncio lets
    them; the transport stays open and the loop usable."""

    class Interrupting(Collector):
        def data_received(self, data: bytes) -> None:
            raise exc_type()

    async def setup() -> tuple[asyncio.AbstractServer, asyncio.Transport, Collector]:
        server = await loop.create_server(lambda: Interrupting(loop), "127.0.0.1", 0)
        tr, proto = await loop.create_connection(
            lambda: Collector(loop), *server.sockets[0].getsockname()
        )
        return server, tr, proto  # type: ignore[return-value]

    server, client, _ = loop.run_until_complete(setup())
    client.write(b"interrupt")
    guard = loop.call_later(30, loop.stop)  # only ends the run if the interrupt is lost
    with pytest.raises(exc_type):
        loop.run_forever()
    guard.cancel()

    async def after() -> bool:
        await asyncio.sleep(0)
        client.close()
        server.close()
        await server.wait_closed()
        return client.is_closing()

    assert loop.run_until_complete(after())


def test_connection_lost_raises(
    loop: asyncio.AbstractEventLoop, loop_errors: list[dict[str, Any]]
) -> None:
    class Raising(Collector):
        def connection_lost(self, exc: BaseException | None) -> None:
            super().connection_lost(exc)
            raise ZeroDivisionError("bad connection_lost")

    async def main() -> None:
        async with tcp_pair(loop, client_factory=lambda: Raising(loop)) as p:
            p.client.close()
            await p.client_proto.lost
            await asyncio.sleep(0)
        assert p.client.get_extra_info("socket").fileno() == -1  # closed all the same

    run(loop, main())
    assert len(loop_errors) == 1
    assert loop_errors[0]["message"].startswith("Exception in callback")
    assert isinstance(loop_errors[0]["exception"], ZeroDivisionError)


def test_reader_fd_closed_behind_the_loops_back(loop: asyncio.AbstractEventLoop) -> None:
    # The fd of a watched socket is closed directly: the watcher goes quiet, removing it later
    # is not an error, and the loop keeps running.
    a, b = socket.socketpair()
    calls: list[int] = []
    loop.add_reader(a.fileno(), calls.append, 1)
    fd = a.detach()
    os.close(fd)

    async def main() -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    try:
        run(loop, main())
        assert calls == []
        assert loop.remove_reader(fd) is True
        assert loop.remove_reader(fd) is False
    finally:
        b.close()


def test_transport_fd_closed_behind_the_loops_back(
    loop: asyncio.AbstractEventLoop, loop_errors: list[dict[str, Any]]
) -> None:
    # Someone closes a live transport's fd. Closing the transport afterwards must not crash
    # the loop; what the handler sees (the socket's own EBADF on close) is asyncio's.
    async def main() -> BaseException | None:
        async with tcp_pair(loop) as p:
            os.close(p.client.get_extra_info("socket").fileno())
            for _ in range(3):
                await asyncio.sleep(0)
            p.client.close()
            exc: BaseException | None = await p.client_proto.lost
            await asyncio.sleep(0)
            return exc

    assert run(loop, main()) is None
    assert [type(c.get("exception")) for c in loop_errors] == [OSError]
    assert loop_errors[0]["exception"].errno == 9  # EBADF from socket.close()


def test_watching_an_unwatchable_fd(
    loop: asyncio.AbstractEventLoop, loop_kind: str, request: pytest.FixtureRequest
) -> None:
    # epoll refuses regular files (EPERM) and closed fds (EBADF): the OSError carries the errno,
    # as asyncio's selector reports it, and leaves no watcher behind.
    import errno
    import tempfile

    with tempfile.TemporaryFile() as f:
        with pytest.raises(PermissionError) as perm:
            loop.add_reader(f.fileno(), print)
        assert perm.value.errno == errno.EPERM
        assert loop.remove_reader(f.fileno()) is False
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError) as bad:
        loop.add_writer(w, print)
    assert bad.value.errno == errno.EBADF
    assert loop.remove_writer(w) is False


def test_fd_of_a_transport_cannot_be_watched(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        async with tcp_pair(loop) as p:
            fd = p.client.get_extra_info("socket").fileno()
            for call in (
                lambda: loop.add_reader(fd, print),
                lambda: loop.add_writer(fd, print),
                lambda: loop.remove_reader(fd),
                lambda: loop.remove_writer(fd),
            ):
                with pytest.raises(
                    RuntimeError, match=f"File descriptor {fd} is used by transport"
                ):
                    call()

    run(loop, main())


@pytest.mark.skipif(
    sys.implementation.name != "cpython" or not (3, 5) <= sys.version_info[:2] < (3, 14),
    reason="the socket object layout is only read on CPython 3.5-3.13",
)
def test_steploop_reads_socket_fields_directly() -> None:
    # transport.write reads the socket's fd and timeout from the object (no fileno() and
    # gettimeout() calls per write); the layout check must recognise this interpreter.
    from steploop import _steploop

    assert _steploop._socket_layout_known()
