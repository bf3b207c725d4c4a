"""Low-level socket calls (`loop.sock_*`), name resolution and sendfile, on asyncio and steploop."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from net_helpers import no_leaked_fds, run, unix_path  # noqa: F401 (no_leaked_fds: autouse)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A non-blocking TCP listening socket on 127.0.0.1."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    s.setblocking(False)
    yield s
    s.close()


@pytest.fixture
def payload_file() -> Iterator[tuple[str, bytes]]:
    data = bytes(range(256)) * 2000  # 512000 bytes
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(data)
    yield f.name, data
    os.unlink(f.name)


# ---------------------------------------------------------------- streams over socket pairs


def test_sock_recv_into(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair

    async def main() -> tuple[int, bytes]:
        buf = bytearray(10)
        loop.call_soon(a.send, b"hello")
        n = await loop.sock_recv_into(b, buf)
        return n, bytes(buf[:n])

    assert run(loop, main()) == (5, b"hello")


def test_sock_recv_into_memoryview_slice(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair

    async def main() -> bytes:
        buf = bytearray(b"........")
        a.send(b"abc")
        n = await loop.sock_recv_into(b, memoryview(buf)[2:])
        assert n == 3
        return bytes(buf)

    assert run(loop, main()) == b"..abc..."


def test_sock_sendall_waits_for_a_full_buffer(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    # Far more than the socket buffers hold: sock_sendall must wait for writability.
    a, b = pair
    data = os.urandom(4 * 1024 * 1024)

    async def reader() -> bytes:
        chunks = []
        while chunk := await loop.sock_recv(b, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)

    async def main() -> bytes:
        task = loop.create_task(reader())
        await loop.sock_sendall(a, data)
        a.shutdown(socket.SHUT_WR)
        return await task

    assert run(loop, main()) == data


def test_sock_sendall_empty(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = pair
    assert run(loop, loop.sock_sendall(a, b"")) is None


def test_sock_sendall_closed_socket(loop: asyncio.AbstractEventLoop) -> None:
    a, b = socket.socketpair()
    a.close()
    b.setblocking(False)
    b.close()
    with pytest.raises(OSError) as info:
        run(loop, loop.sock_sendall(b, b"data"))
    assert str(info.value) == "[Errno 9] Bad file descriptor"


def test_sock_sendall_to_a_closed_peer(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    b.close()
    with pytest.raises(BrokenPipeError) as info:
        run(loop, loop.sock_sendall(a, b"data"))
    assert str(info.value) == "[Errno 32] Broken pipe"


def test_sock_sendall_mixed_kinds_keep_order(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    # bytes (steploop's native first send), bytearray and memoryview (asyncio's path), some
    # larger than the socket buffer (a partial send, then a wait for writability).
    a, b = pair
    parts: list[Any] = [b"head", bytearray(b"-ba-"), os.urandom(3_000_000), memoryview(b"-mv-")]
    parts += [os.urandom(1_000_000), b"tail"]
    expected = b"".join(bytes(p) for p in parts)

    async def main() -> bytes:
        async def reader() -> bytes:
            got = bytearray()
            while len(got) < len(expected):
                chunk = await loop.sock_recv(b, 1 << 20)
                assert chunk, "peer closed early"
                got += chunk
            return bytes(got)

        task = asyncio.ensure_future(reader())
        for part in parts:
            await loop.sock_sendall(a, part)
        return await task

    assert run(loop, main()) == expected


def _nb_pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def _pair_reusing(fd: int, keep: list[socket.socket]) -> tuple[socket.socket, socket.socket]:
    """A new non-blocking pair one end of which (returned second) has the number ``fd``."""
    for _ in range(64):
        c, d = _nb_pair()
        if fd in (c.fileno(), d.fileno()):
            return (c, d) if d.fileno() == fd else (d, c)
        keep += [c, d]
    raise AssertionError(f"fd number {fd} was not reused")


async def _wait_recv(loop: asyncio.AbstractEventLoop, peer: socket.socket, sock: socket.socket,
                     data: bytes) -> bytes:  # fmt: skip
    """sock_recv on ``sock`` that has to wait: ``data`` is sent once the wait began."""
    task = asyncio.ensure_future(loop.sock_recv(sock, 100))
    await asyncio.sleep(0)  # the task's first step: nothing to read yet, it waits
    assert not task.done()
    peer.send(data)
    return await asyncio.wait_for(task, 30)


def test_sock_recv_waits_back_to_back(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    # Waits, partial reads that leave data behind, then waits again (steploop keeps the
    # socket's registration between waits).
    a, b = pair

    async def main() -> list[bytes]:
        got = [await _wait_recv(loop, a, b, b"one")]
        a.send(b"abcdef")
        got += [await loop.sock_recv(b, 3), await loop.sock_recv(b, 3)]
        got += [await _wait_recv(loop, a, b, b"two"), await _wait_recv(loop, a, b, b"three")]
        return got

    assert run(loop, main()) == [b"one", b"abc", b"def", b"two", b"three"]


def test_sock_recv_on_a_new_socket_with_a_reused_fd_number(
    loop: asyncio.AbstractEventLoop,
) -> None:
    keep: list[socket.socket] = []

    async def main() -> bytes:
        a, b = _nb_pair()
        assert await _wait_recv(loop, a, b, b"old") == b"old"
        fd = b.fileno()
        a.close()
        b.close()
        c, d = _pair_reusing(fd, keep)
        try:
            return await _wait_recv(loop, c, d, b"new")
        finally:
            c.close()
            d.close()

    try:
        assert run(loop, main()) == b"new"
    finally:
        for s in keep:
            s.close()


def test_sock_recv_after_a_dup_kept_the_old_socket_alive(
    loop: asyncio.AbstractEventLoop,
) -> None:
    # The old socket's file lives on in a dup after its fd is closed; data sent to it must
    # not wake the new socket that got the same fd number.
    keep: list[socket.socket] = []

    async def main() -> tuple[bytes, bytes]:
        a, b = _nb_pair()
        assert await _wait_recv(loop, a, b, b"old") == b"old"
        dup = b.dup()
        fd = b.fileno()
        b.close()
        c, d = _pair_reusing(fd, keep)
        try:
            waiter = asyncio.ensure_future(loop.sock_recv(d, 100))
            await asyncio.sleep(0)
            a.send(b"to the dup")
            for _ in range(5):
                await asyncio.sleep(0)
            assert not waiter.done()
            c.send(b"new")
            new = await asyncio.wait_for(waiter, 30)
            return new, dup.recv(100)
        finally:
            for s in (a, dup, c, d):
                s.close()

    try:
        assert run(loop, main()) == (b"new", b"to the dup")
    finally:
        for s in keep:
            s.close()


def test_add_reader_after_sock_recv_sees_pending_data(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair

    async def main() -> bytes:
        assert await _wait_recv(loop, a, b, b"first") == b"first"
        a.send(b"pending")
        for _ in range(3):
            await asyncio.sleep(0)  # iterations that poll while nothing watches b
        ready: asyncio.Future[bytes] = loop.create_future()

        def on_readable() -> None:
            loop.remove_reader(b)
            ready.set_result(b.recv(100))

        loop.add_reader(b, on_readable)
        return await asyncio.wait_for(ready, 30)

    assert run(loop, main()) == b"pending"


def test_sock_recv_returns_empty_at_eof(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    a.shutdown(socket.SHUT_WR)
    assert run(loop, loop.sock_recv(b, 10)) == b""


def test_cancelled_sock_recv_leaves_no_reader(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair

    async def main() -> bytes:
        task = loop.create_task(loop.sock_recv(b, 10))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # A second receive on the same socket works (the first one's watcher is gone).
        a.send(b"after")
        return await loop.sock_recv(b, 10)

    assert run(loop, main()) == b"after"
    assert loop.remove_reader(b) is False


def test_waiting_sock_recv_gets_what_arrives(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    # The receive waits (nothing to read at first), then gets a short read, then the rest;
    # after each one no reader is left behind.
    a, b = pair

    async def main() -> list[bytes]:
        got = []
        for chunk in (b"abc", b"defgh" * 1000):
            task = loop.create_task(loop.sock_recv(b, 100_000))
            await asyncio.sleep(0)
            assert not task.done()
            a.send(chunk)
            got.append(await task)
            assert loop.remove_reader(b) is False
        return got

    assert run(loop, main()) == [b"abc", b"defgh" * 1000]


def test_waiting_sock_recv_reset_by_peer(loop: asyncio.AbstractEventLoop) -> None:
    # The error asyncio gives (socket.recv's), raised from the waiting receive.
    import struct

    async def main() -> str:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        cli = socket.create_connection(srv.getsockname())
        conn, _ = srv.accept()
        conn.setblocking(False)
        task = loop.create_task(loop.sock_recv(conn, 10))
        await asyncio.sleep(0)
        # SO_LINGER 0: close() sends a RST.
        cli.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        cli.close()
        try:
            with pytest.raises(ConnectionResetError) as exc:
                await task
            assert loop.remove_reader(conn) is False
            return str(exc.value)
        finally:
            conn.close()
            srv.close()

    assert run(loop, main()) == "[Errno 104] Connection reset by peer"


def test_sock_recv_data_already_there(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    a.send(b"ready")
    assert run(loop, loop.sock_recv(b, 3)) == b"rea"
    assert run(loop, loop.sock_recv(b, 0)) == b""
    assert run(loop, loop.sock_recv(b, 100)) == b"dy"
    assert loop.remove_reader(b) is False


@pytest.mark.parametrize(
    "n, exc, message",
    [
        (-1, ValueError, "negative buffersize in recv"),
        ("10", TypeError, "'str' object cannot be interpreted as an integer"),
    ],
)
def test_sock_recv_bad_size(
    loop: asyncio.AbstractEventLoop,
    pair: tuple[socket.socket, socket.socket],
    n: Any,
    exc: type[Exception],
    message: str,
) -> None:
    # socket.recv's own errors, as asyncio gives them.
    _, b = pair
    with pytest.raises(exc) as info:
        run(loop, loop.sock_recv(b, n))
    assert str(info.value) == message


def test_sock_recv_closed_socket(loop: asyncio.AbstractEventLoop) -> None:
    a, b = socket.socketpair()
    a.close()
    b.setblocking(False)
    b.close()
    with pytest.raises(OSError) as info:
        run(loop, loop.sock_recv(b, 10))
    assert str(info.value) == "[Errno 9] Bad file descriptor"


def test_sock_recv_uses_a_subclass_recv(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    # A socket subclass that overrides recv() is read through its recv(), as on asyncio.
    a, b = pair

    class Upper(socket.socket):
        def recv(self, n: int, flags: int = 0) -> bytes:
            return super().recv(n, flags).upper()

    up = Upper(fileno=b.detach())
    up.setblocking(False)

    async def main() -> bytes:
        task = loop.create_task(loop.sock_recv(up, 10))
        await asyncio.sleep(0)
        a.send(b"quiet")
        return await task

    try:
        assert run(loop, main()) == b"QUIET"
    finally:
        up.close()


def test_concurrent_sock_recv_on_one_socket_is_allowed(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    # asyncio replaces the watcher: the second receive wins, the first keeps waiting.
    a, b = pair

    async def main() -> bytes:
        first = loop.create_task(loop.sock_recv(b, 10))
        await asyncio.sleep(0)
        second = loop.create_task(loop.sock_recv(b, 10))
        await asyncio.sleep(0)
        a.send(b"x")
        got = await second
        assert not first.done()
        first.cancel()
        return got

    assert run(loop, main()) == b"x"


def test_sock_methods_refuse_ssl_sockets(loop: asyncio.AbstractEventLoop) -> None:
    import ssl

    ctx = ssl.create_default_context()
    raw = socket.socket()
    sock = ctx.wrap_socket(raw, do_handshake_on_connect=False, server_hostname="x")
    try:
        with pytest.raises(TypeError, match="Socket cannot be of type SSLSocket"):
            run(loop, loop.sock_recv(sock, 1))
    finally:
        sock.close()


# ---------------------------------------------------------------- accept / connect


def test_sock_accept_and_connect(loop: asyncio.AbstractEventLoop, listener: socket.socket) -> None:
    addr = listener.getsockname()

    async def main() -> tuple[bytes, bool, tuple[str, int]]:
        client = socket.socket()
        client.setblocking(False)
        accept = loop.create_task(loop.sock_accept(listener))
        await loop.sock_connect(client, addr)
        conn, peer = await accept
        try:
            await loop.sock_sendall(client, b"over tcp")
            data = await loop.sock_recv(conn, 100)
            return data, conn.getblocking(), peer
        finally:
            conn.close()
            client.close()

    data, blocking, peer = run(loop, main())
    assert data == b"over tcp"
    assert blocking is False  # asyncio sets accepted sockets non-blocking
    assert peer[0] == "127.0.0.1"


def test_sock_connect_resolves_hostnames(
    loop: asyncio.AbstractEventLoop, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]

    async def main() -> None:
        client = socket.socket()
        client.setblocking(False)
        try:
            await loop.sock_connect(client, ("localhost", port))
            conn, _ = await loop.sock_accept(listener)
            conn.close()
        finally:
            client.close()

    run(loop, main())


def test_sock_connect_refused(loop: asyncio.AbstractEventLoop) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed right away: nothing listens there

    async def main() -> None:
        client = socket.socket()
        client.setblocking(False)
        try:
            await loop.sock_connect(client, ("127.0.0.1", port))
        finally:
            client.close()

    with pytest.raises(ConnectionRefusedError):
        run(loop, main())


def test_sock_accept_and_connect_unix(loop: asyncio.AbstractEventLoop) -> None:
    with unix_path() as path:
        server = socket.socket(socket.AF_UNIX)
        server.bind(path)
        server.listen(1)
        server.setblocking(False)

        async def main() -> bytes:
            client = socket.socket(socket.AF_UNIX)
            client.setblocking(False)
            accept = loop.create_task(loop.sock_accept(server))
            await loop.sock_connect(client, path)
            conn, _ = await accept
            try:
                await loop.sock_sendall(conn, b"unix!")
                return await loop.sock_recv(client, 10)
            finally:
                conn.close()
                client.close()

        try:
            assert run(loop, main()) == b"unix!"
        finally:
            server.close()


# ---------------------------------------------------------------- datagrams


@pytest.fixture
def udp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in (a, b):
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_sock_sendto_and_recvfrom(
    loop: asyncio.AbstractEventLoop, udp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = udp_pair

    async def main() -> tuple[bytes, tuple[str, int]]:
        recv = loop.create_task(loop.sock_recvfrom(b, 100))
        await asyncio.sleep(0)
        sent = await loop.sock_sendto(a, b"datagram", b.getsockname())
        assert sent == 8
        return await recv

    data, addr = run(loop, main())
    assert data == b"datagram"
    assert addr == a.getsockname()


def test_sock_recvfrom_into(
    loop: asyncio.AbstractEventLoop, udp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = udp_pair

    async def main() -> tuple[int, tuple[str, int], bytes]:
        buf = bytearray(16)
        a.sendto(b"into", b.getsockname())
        n, addr = await loop.sock_recvfrom_into(b, buf)
        return n, addr, bytes(buf[:n])

    n, addr, data = run(loop, main())
    assert (n, data) == (4, b"into")
    assert addr == a.getsockname()


def test_sock_recvfrom_into_with_nbytes(
    loop: asyncio.AbstractEventLoop, udp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = udp_pair

    async def main() -> tuple[int, bytes]:
        buf = bytearray(16)
        a.sendto(b"truncated", b.getsockname())
        n, _ = await loop.sock_recvfrom_into(b, buf, 3)
        return n, bytes(buf)

    # The rest of a datagram that does not fit is dropped, as for a plain recvfrom_into.
    assert run(loop, main()) == (3, b"tru" + bytes(13))


def test_sock_recvfrom_truncates_oversized_datagram(
    loop: asyncio.AbstractEventLoop, udp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = udp_pair

    async def main() -> list[bytes]:
        a.sendto(b"x" * 1000, b.getsockname())
        a.sendto(b"next", b.getsockname())
        first, _ = await loop.sock_recvfrom(b, 10)
        second, _ = await loop.sock_recvfrom(b, 10)
        return [first, second]

    assert run(loop, main()) == [b"x" * 10, b"next"]


def test_sock_sendto_too_large(
    loop: asyncio.AbstractEventLoop, udp_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = udp_pair
    with pytest.raises(OSError) as info:
        run(loop, loop.sock_sendto(a, b"x" * 70000, b.getsockname()))
    assert info.value.errno == 90  # EMSGSIZE


# ---------------------------------------------------------------- sendfile


def test_sock_sendfile(
    loop: asyncio.AbstractEventLoop, listener: socket.socket, payload_file: tuple[str, bytes]
) -> None:
    path, data = payload_file

    async def main() -> tuple[int, bytes, int]:
        client = socket.socket()
        client.setblocking(False)
        accept = loop.create_task(loop.sock_accept(listener))
        await loop.sock_connect(client, listener.getsockname())
        conn, _ = await accept

        async def read_all() -> bytes:
            chunks = []
            while chunk := await loop.sock_recv(conn, 1 << 16):
                chunks.append(chunk)
            return b"".join(chunks)

        reader = loop.create_task(read_all())
        with open(path, "rb") as f:  # noqa: ASYNC230 (a local file, the point of the test)
            sent = await loop.sock_sendfile(client, f, 1000, 300_000)
            pos = f.tell()
        client.close()
        got = await reader
        conn.close()
        return sent, got, pos

    sent, got, pos = run(loop, main())
    assert sent == 300_000
    assert got == data[1000:301_000]
    assert pos == 301_000  # the file position follows what was sent


def test_sock_sendfile_fallback_for_udp_is_refused(
    loop: asyncio.AbstractEventLoop,
    udp_pair: tuple[socket.socket, socket.socket],
    payload_file: tuple[str, bytes],
) -> None:
    a, _ = udp_pair
    with open(payload_file[0], "rb") as f, pytest.raises(ValueError, match="SOCK_STREAM"):
        run(loop, loop.sock_sendfile(a, f))


def test_sock_sendfile_text_file_is_refused(
    loop: asyncio.AbstractEventLoop,
    pair: tuple[socket.socket, socket.socket],
    payload_file: tuple[str, bytes],
) -> None:
    a, _ = pair
    with open(payload_file[0]) as f, pytest.raises(ValueError, match="binary mode"):
        run(loop, loop.sock_sendfile(a, f))  # type: ignore[arg-type]


# ---------------------------------------------------------------- name resolution


def test_getaddrinfo_numeric(loop: asyncio.AbstractEventLoop) -> None:
    infos = run(loop, loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM))
    assert infos == socket.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)


def test_getaddrinfo_localhost_with_flags(loop: asyncio.AbstractEventLoop) -> None:
    flags = {"family": socket.AF_INET, "proto": socket.IPPROTO_TCP, "flags": 0}
    expected = socket.getaddrinfo("localhost", "http", **flags)
    assert run(loop, loop.getaddrinfo("localhost", "http", **flags)) == expected


def test_getaddrinfo_unresolvable(loop: asyncio.AbstractEventLoop) -> None:
    with pytest.raises(socket.gaierror):
        run(loop, loop.getaddrinfo("no-such-host.invalid", 80))


def test_getaddrinfo_runs_off_the_loop_thread(loop: asyncio.AbstractEventLoop) -> None:
    import threading

    threads: list[int] = []
    real = socket.getaddrinfo

    def spy(*args: object, **kwargs: object) -> object:
        threads.append(threading.get_ident())
        return real(*args, **kwargs)  # type: ignore[arg-type]

    socket.getaddrinfo = spy  # type: ignore[assignment]
    try:
        run(loop, loop.getaddrinfo("localhost", 80))
    finally:
        socket.getaddrinfo = real
    assert threads and threads[0] != threading.get_ident()


def test_getnameinfo(loop: asyncio.AbstractEventLoop) -> None:
    got = run(loop, loop.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST))
    assert got == socket.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST)


def test_sock_sendfile_is_zero_copy(
    loop: asyncio.AbstractEventLoop,
    pair: tuple[socket.socket, socket.socket],
    payload_file: tuple[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # On Linux the selector loops send with os.sendfile, not read() + send().
    path, data = payload_file
    a, b = pair
    calls: list[int] = []
    real = os.sendfile

    def counting(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        calls.append(count)
        return real(out_fd, in_fd, offset, count)

    monkeypatch.setattr(os, "sendfile", counting)

    async def main() -> bytes:
        async def read(n: int) -> bytes:
            buf = bytearray()
            while len(buf) < n:
                buf += await loop.sock_recv(b, 1 << 16)
            return bytes(buf)

        reader = loop.create_task(read(len(data)))
        with open(path, "rb") as f:  # noqa: ASYNC230 (a local file, the point of the test)
            await loop.sock_sendfile(a, f, fallback=False)
        return await reader

    assert run(loop, main()) == data
    assert calls


@pytest.mark.parametrize(
    ("host", "port", "kwargs"),
    [
        ("127.0.0.1", 80, {}),
        ("127.0.0.1", "8080", {"type": socket.SOCK_STREAM}),
        (b"10.1.2.3", b"53", {"type": socket.SOCK_DGRAM}),
        ("::1", 443, {"family": socket.AF_INET6, "proto": socket.IPPROTO_TCP}),
        ("127.0.0.1", None, {"flags": socket.AI_PASSIVE}),
        ("127.0.0.1", "http", {}),  # a service name: not the numeric fast path
        (None, 0, {"flags": socket.AI_PASSIVE, "type": socket.SOCK_STREAM}),
        ("127.0.0.1", 70000, {}),  # libc takes the port modulo 65536
    ],
)
def test_getaddrinfo_matches_the_resolver(
    loop: asyncio.AbstractEventLoop, host: Any, port: Any, kwargs: dict[str, int]
) -> None:
    assert run(loop, loop.getaddrinfo(host, port, **kwargs)) == socket.getaddrinfo(
        host, port, **kwargs
    )


@pytest.mark.parametrize(
    ("host", "port", "kwargs"),
    [
        ("127.0.0.1", 80, {"family": socket.AF_INET6}),  # an IPv4 address for AF_INET6
        ("::1", 80, {"family": socket.AF_INET}),
        ("127.0.0.1", "no-such-service", {}),
    ],
)
def test_getaddrinfo_numeric_errors(
    loop: asyncio.AbstractEventLoop, host: Any, port: Any, kwargs: dict[str, int]
) -> None:
    with pytest.raises(socket.gaierror) as expected:
        socket.getaddrinfo(host, port, **kwargs)
    with pytest.raises(expected.type) as got:
        run(loop, loop.getaddrinfo(host, port, **kwargs))
    assert got.value.args == expected.value.args


@pytest.mark.steploop_only
def test_steploop_numeric_getaddrinfo_skips_the_executor() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from loop_helpers import new_loop_of_kind

    class NoExecutor(ThreadPoolExecutor):
        def submit(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("the executor was used")

    loop = new_loop_of_kind("steploop")
    loop.set_debug(False)  # debug mode keeps asyncio's path (and its timing log)
    loop.set_default_executor(NoExecutor())
    try:
        infos = run(loop, loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM))
        assert infos == socket.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
        with pytest.raises(AssertionError, match="the executor was used"):
            run(loop, loop.getaddrinfo("localhost", 80))
    finally:
        loop.close()
