"""TLS through asyncio.sslproto over the loop's transports: create_server/create_connection with
`ssl=`, streams, `start_tls`, extra info, client certificates, verification failures and
handshake timeouts, on asyncio and steploop. Certificates are generated per test session."""

from __future__ import annotations

import asyncio
import socket
import ssl
from asyncio import trsock
from collections.abc import Iterator
from typing import Any

import pytest
from net_helpers import Certs, Collector, make_certs, no_leaked_fds, run, settle, unix_path  # noqa: F401 (no_leaked_fds: autouse)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Certs]:
    yield make_certs(str(tmp_path_factory.mktemp("certs")))


def check_incoming_handshake_errors(
    loop: asyncio.AbstractEventLoop, errors: list[dict[str, Any]]
) -> None:
    """A server's failed handshake goes to the exception handler in debug mode only."""
    for context in errors:
        assert loop.get_debug()
        assert context["message"] == "Error on transport creation for incoming connection"
        assert isinstance(context["exception"], OSError)  # ssl.SSLError, ConnectionResetError


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


def test_tls_connection_and_extra_info(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    client_ctx = certs.client_context()
    server_ctx = certs.server_context()

    async def main() -> None:
        server_side: asyncio.Future[Any] = loop.create_future()

        class ServerEcho(Echo):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                server_side.set_result(transport)

        server = await loop.create_server(ServerEcho, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        tr, proto = await loop.create_connection(
            lambda: Collector(loop), "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost"
        )
        payload = b"secret " * 50_000  # several TLS records
        tr.write(payload)
        assert await proto.wait_for(len(payload)) == payload

        assert isinstance(tr, asyncio.Transport)
        assert tr.get_extra_info("sslcontext") is client_ctx
        sslobj = tr.get_extra_info("ssl_object")
        assert isinstance(sslobj, ssl.SSLObject)
        assert sslobj.server_hostname == "localhost"
        peercert = tr.get_extra_info("peercert")
        assert dict(x[0] for x in peercert["subject"])["commonName"] == "localhost"
        cipher = tr.get_extra_info("cipher")
        assert isinstance(cipher, tuple) and len(cipher) == 3
        assert cipher == sslobj.cipher()
        assert tr.get_extra_info("compression") is None
        assert tr.get_extra_info("peername") == ("127.0.0.1", port)
        assert isinstance(tr.get_extra_info("socket"), trsock.TransportSocket)

        st = await server_side
        assert st.get_extra_info("sslcontext") is server_ctx
        assert st.get_extra_info("peercert") is None  # no client certificate asked for
        assert st.get_extra_info("ssl_object").server_side

        tr.close()
        assert await proto.lost is None
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_tls_write_eof_unsupported(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    async def main() -> None:
        server = await loop.create_server(Echo, "127.0.0.1", 0, ssl=certs.server_context())
        tr, proto = await loop.create_connection(
            lambda: Collector(loop),
            *server.sockets[0].getsockname(),
            ssl=certs.client_context(),
            server_hostname="localhost",
        )
        assert not tr.can_write_eof()
        with pytest.raises(NotImplementedError):
            tr.write_eof()
        tr.abort()
        await proto.lost
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_tls_streams(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        writer.write(line[::-1])
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main() -> bytes:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=certs.server_context())
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(
            "localhost", port, ssl=certs.client_context()
        )
        writer.write(b"hello tls\n")
        await writer.drain()
        got = await reader.read()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return got

    assert run(loop, main()) == b"\nslt olleh"


def test_tls_over_unix_socket(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    with unix_path() as path:

        async def main() -> bytes:
            server = await loop.create_unix_server(Echo, path, ssl=certs.server_context())
            tr, proto = await loop.create_unix_connection(
                lambda: Collector(loop), path, ssl=certs.client_context(),
                server_hostname="localhost",
            )  # fmt: skip
            tr.write(b"unix+tls")
            got = await proto.wait_for(8)
            tr.close()
            await proto.lost
            server.close()
            await server.wait_closed()
            return got

        assert run(loop, main()) == b"unix+tls"


def test_client_certificate(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    async def main() -> str:
        seen: asyncio.Future[Any] = loop.create_future()

        class Server(Echo):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                seen.set_result(transport.get_extra_info("peercert"))

        server = await loop.create_server(
            Server, "127.0.0.1", 0, ssl=certs.server_context(require_client_cert=True)
        )
        tr, proto = await loop.create_connection(
            lambda: Collector(loop),
            *server.sockets[0].getsockname(),
            ssl=certs.client_context(with_cert=True),
            server_hostname="localhost",
        )
        peercert = await seen
        tr.close()
        await proto.lost
        server.close()
        await server.wait_closed()
        common: str = dict(x[0] for x in peercert["subject"])["commonName"]
        return common

    assert run(loop, main()) == "client"


def test_start_tls_both_sides(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    # A plain connection that upgrades to TLS after a STARTTLS line, as SMTP/IMAP do.
    async def main() -> tuple[bytes, bytes]:
        upgraded: asyncio.Future[bytes] = loop.create_future()

        class Server(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport: Any = transport
                self.secure = False

            def data_received(self, data: bytes) -> None:
                if self.secure:  # may come before start_tls() returns
                    upgraded.set_result(data)
                    return
                assert data == b"STARTTLS\n"
                self.secure = True
                self.transport.write(b"GO\n")
                loop.create_task(self.upgrade())

            async def upgrade(self) -> None:
                tls = await loop.start_tls(
                    self.transport, self, certs.server_context(), server_side=True
                )
                assert tls is not None
                tls.write(b"over tls: " + await upgraded)

        server = await loop.create_server(Server, "127.0.0.1", 0)
        plain, proto = await loop.create_connection(
            lambda: Collector(loop), *server.sockets[0].getsockname()
        )
        plain.write(b"STARTTLS\n")
        assert await proto.wait_for(3) == b"GO\n"
        tls = await loop.start_tls(
            plain, proto, certs.client_context(), server_hostname="localhost"
        )
        assert tls is not None
        assert plain.is_closing() or tls is not plain
        assert isinstance(tls.get_extra_info("ssl_object"), ssl.SSLObject)
        proto.data.clear()
        tls.write(b"ping")
        got_server = await upgraded
        got_client = await proto.wait_for(14)
        tls.close()
        await proto.lost
        server.close()
        await server.wait_closed()
        return got_server, got_client

    assert run(loop, main()) == (b"ping", b"over tls: ping")


def test_stream_writer_start_tls(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.readline() == b"STARTTLS\n"
        writer.write(b"GO\n")
        await writer.drain()
        await writer.start_tls(certs.server_context())
        writer.write(b"secure " + await reader.readline())
        await writer.drain()
        writer.close()

    async def main() -> tuple[bytes, Any]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
        writer.write(b"STARTTLS\n")
        assert await reader.readline() == b"GO\n"
        await writer.start_tls(certs.client_context(), server_hostname="localhost")
        writer.write(b"hello\n")
        got = await reader.readline()
        cipher = writer.get_extra_info("cipher")
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return got, cipher

    got, cipher = run(loop, main())
    assert got == b"secure hello\n"
    assert cipher is not None


def test_wrong_hostname(
    loop: asyncio.AbstractEventLoop, certs: Certs, loop_errors: list[dict[str, Any]]
) -> None:
    async def main() -> None:
        server = await loop.create_server(Echo, "127.0.0.1", 0, ssl=certs.server_context())
        try:
            with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
                await loop.create_connection(
                    asyncio.Protocol,
                    *server.sockets[0].getsockname(),
                    ssl=certs.client_context(),
                    server_hostname="example.com",
                )
        finally:
            await settle()
            server.close()
            await server.wait_closed()

    run(loop, main())
    check_incoming_handshake_errors(loop, loop_errors)


def test_untrusted_certificate(
    loop: asyncio.AbstractEventLoop, certs: Certs, loop_errors: list[dict[str, Any]]
) -> None:
    async def main() -> None:
        server = await loop.create_server(Echo, "127.0.0.1", 0, ssl=certs.server_context())
        try:
            with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
                await loop.create_connection(
                    asyncio.Protocol,
                    *server.sockets[0].getsockname(),
                    ssl=ssl.create_default_context(),  # the system CAs, not ours
                    server_hostname="localhost",
                )
        finally:
            await settle()
            server.close()
            await server.wait_closed()

    run(loop, main())
    check_incoming_handshake_errors(loop, loop_errors)


def test_tls_client_to_plain_server(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    # The server answers the ClientHello with plain text: the handshake fails with SSLError.
    async def main() -> None:
        class Plain(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                transport.write(b"HTTP/1.0 400 Bad Request\r\n\r\n")  # type: ignore[attr-defined]

        server = await loop.create_server(Plain, "127.0.0.1", 0)
        try:
            with pytest.raises(ssl.SSLError):
                await loop.create_connection(
                    asyncio.Protocol,
                    *server.sockets[0].getsockname(),
                    ssl=certs.client_context(),
                    server_hostname="localhost",
                )
        finally:
            await settle()
            server.close()
            await server.wait_closed()

    run(loop, main())


def test_handshake_timeout(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    # The peer accepts the TCP connection and never answers the ClientHello.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    async def main() -> None:
        with pytest.raises(ConnectionAbortedError, match="SSL handshake is taking longer than"):
            await loop.create_connection(
                asyncio.Protocol,
                *listener.getsockname(),
                ssl=certs.client_context(),
                server_hostname="localhost",
                ssl_handshake_timeout=0.1,
            )

    try:
        run(loop, main())
    finally:
        listener.close()


def test_server_survives_a_bad_client(
    loop: asyncio.AbstractEventLoop, certs: Certs, loop_errors: list[dict[str, Any]]
) -> None:
    async def main() -> bytes:
        server = await loop.create_server(
            Echo, "127.0.0.1", 0, ssl=certs.server_context(), ssl_handshake_timeout=5
        )
        addr = server.sockets[0].getsockname()
        r, w = await asyncio.open_connection(*addr)
        w.write(b"GET / HTTP/1.0\r\n\r\n")  # not a ClientHello
        assert await r.read() == b""  # the server drops the connection
        w.close()
        await w.wait_closed()
        tr, proto = await loop.create_connection(
            lambda: Collector(loop), *addr, ssl=certs.client_context(), server_hostname="localhost"
        )
        tr.write(b"fine")
        got = await proto.wait_for(4)
        tr.close()
        await proto.lost
        server.close()
        await server.wait_closed()
        return got

    assert run(loop, main()) == b"fine"
    check_incoming_handshake_errors(loop, loop_errors)


def test_argument_errors(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="ssl_handshake_timeout is only meaningful with ssl"):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", 1, ssl_handshake_timeout=1)
        with pytest.raises(ValueError, match="ssl_shutdown_timeout is only meaningful with ssl"):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", 1, ssl_shutdown_timeout=1)
        with (
            socket.socket() as sock,
            pytest.raises(ValueError, match="You must set server_hostname when using ssl"),
        ):
            await loop.create_connection(asyncio.Protocol, sock=sock, ssl=certs.client_context())

    run(loop, main())


def test_shutdown_timeout(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    # The peer completes the handshake, then never answers our close_notify.
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    done = threading.Event()

    def peer() -> None:
        conn, _ = listener.accept()
        with certs.server_context().wrap_socket(conn, server_side=True):  # handshakes
            done.wait(30)
            # never reads: our close_notify goes unanswered

    thread = threading.Thread(target=peer)
    thread.start()

    async def main() -> BaseException | None:
        tr, proto = await loop.create_connection(
            lambda: Collector(loop),
            *listener.getsockname(),
            ssl=certs.client_context(),
            server_hostname="localhost",
            ssl_shutdown_timeout=0.1,
        )
        tr.close()
        exc: BaseException | None = await proto.lost
        return exc

    try:
        exc = run(loop, main())
    finally:
        done.set()
        thread.join(30)
        listener.close()
    assert isinstance(exc, TimeoutError)
    assert str(exc) == "SSL shutdown timed out"
