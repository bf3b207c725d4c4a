"""File-descriptor callbacks (add_reader / add_writer) and signal handlers."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
from collections.abc import Iterator

import pytest
from loop_helpers import run_briefly, run_until_done


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


# ---------------------------------------------------------------- readers


def test_add_reader_called_when_readable(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    got = loop.create_future()

    def on_readable(arg: str) -> None:
        got.set_result((arg, a.recv(100)))
        loop.remove_reader(a.fileno())

    loop.add_reader(a.fileno(), on_readable, "arg")
    loop.call_soon(b.send, b"ping")
    assert run_until_done(loop, got) == ("arg", b"ping")
    assert loop.remove_reader(a.fileno()) is False


def test_reader_is_level_triggered(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    # Unread data keeps the fd readable: the callback runs in every iteration.
    a, b = pair
    calls: list[int] = []
    b.send(b"x")
    loop.add_reader(a, calls.append, 1)
    run_briefly(loop, 3)
    assert calls == [1, 1, 1]
    assert a.recv(10) == b"x"
    run_briefly(loop, 2)
    assert calls == [1, 1, 1]
    assert loop.remove_reader(a) is True


def test_remove_reader_return_values(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = pair
    assert loop.remove_reader(a.fileno()) is False
    loop.add_reader(a.fileno(), lambda: None)
    assert loop.remove_reader(a.fileno()) is True
    assert loop.remove_reader(a.fileno()) is False
    # Registering by socket object and removing by fd are the same registration.
    loop.add_reader(a, lambda: None)
    assert loop.remove_reader(a.fileno()) is True
    assert loop.remove_writer(a.fileno()) is False


def test_re_register_reader_replaces_callback(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    calls: list[str] = []
    loop.add_reader(a.fileno(), calls.append, "old")
    loop.add_reader(a.fileno(), calls.append, "new")
    b.send(b"x")
    run_briefly(loop)
    assert calls == ["new"]
    assert loop.remove_reader(a.fileno()) is True
    assert loop.remove_reader(a.fileno()) is False


def test_reader_removing_itself(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    calls: list[bool] = []

    def once() -> None:
        calls.append(loop.remove_reader(a.fileno()))

    loop.add_reader(a.fileno(), once)
    b.send(b"data stays unread")
    run_briefly(loop, 4)
    assert calls == [True]


def test_reader_and_writer_on_same_fd(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    calls: list[str] = []
    loop.add_reader(a.fileno(), calls.append, "read")
    loop.add_writer(a.fileno(), calls.append, "write")
    run_briefly(loop)
    assert calls == ["write"]  # writable, nothing to read yet
    b.send(b"x")
    calls.clear()
    run_briefly(loop)
    assert sorted(calls) == ["read", "write"]
    assert loop.remove_writer(a.fileno()) is True
    calls.clear()
    run_briefly(loop)
    assert calls == ["read"]  # removing the writer kept the reader
    assert loop.remove_reader(a.fileno()) is True
    calls.clear()
    run_briefly(loop)
    assert calls == []


def test_reader_fd_closed_elsewhere_after_removal(
    loop: asyncio.AbstractEventLoop,
) -> None:
    r, w = os.pipe()
    try:
        calls: list[int] = []
        loop.add_reader(r, calls.append, 1)
        os.write(w, b"x")
        run_briefly(loop)
        assert calls == [1]
        assert loop.remove_reader(r) is True
    finally:
        os.close(r)
        os.close(w)
    run_briefly(loop)
    assert calls == [1]


def test_bad_file_objects(loop: asyncio.AbstractEventLoop) -> None:
    with pytest.raises(ValueError, match="^Invalid file object: 'bad'$"):
        loop.add_reader("bad", lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^Invalid file descriptor: -1$"):
        loop.add_reader(-1, lambda: None)
    with pytest.raises(ValueError, match="^Invalid file object: 1.5$"):
        loop.add_writer(1.5, lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^Invalid file descriptor: -1$"):
        loop.remove_reader(-1)


# ---------------------------------------------------------------- writers


def test_add_writer_called_when_writable(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    got = loop.create_future()

    def on_writable() -> None:
        a.send(b"hello")
        assert loop.remove_writer(a.fileno()) is True
        got.set_result(None)

    loop.add_writer(a.fileno(), on_writable)
    run_until_done(loop, got)
    assert b.recv(10) == b"hello"
    assert loop.remove_writer(a.fileno()) is False


def test_writer_is_level_triggered(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = pair
    calls: list[str] = []
    loop.add_writer(a, calls.append, "w")
    run_briefly(loop, 3)
    assert calls == ["w", "w", "w"]
    loop.add_writer(a, calls.append, "replaced")
    run_briefly(loop)
    assert calls[-1] == "replaced"
    assert loop.remove_writer(a) is True
    assert loop.remove_writer(a) is False


def test_writer_waits_while_buffer_full(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    try:
        while True:
            a.send(b"x" * 65536)
    except BlockingIOError:
        pass
    calls: list[int] = []
    loop.add_writer(a.fileno(), calls.append, 1)
    run_briefly(loop, 2)
    assert calls == []
    got = loop.create_future()
    loop.remove_writer(a.fileno())

    def on_writable() -> None:
        if not got.done():
            got.set_result(True)

    loop.add_writer(a.fileno(), on_writable)

    def drain() -> None:
        try:
            while b.recv(1 << 20):
                pass
        except BlockingIOError:
            pass

    loop.call_soon(drain)
    assert run_until_done(loop, got) is True
    assert loop.remove_writer(a.fileno()) is True


# ---------------------------------------------------------------- signals

needs_main_thread = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="signal handlers can only be set from the main thread",
)


@needs_main_thread
def test_add_signal_handler(loop: asyncio.AbstractEventLoop) -> None:
    got = loop.create_future()

    def on_signal(arg: str) -> None:
        got.set_result((arg, asyncio.get_running_loop()))

    loop.add_signal_handler(signal.SIGUSR1, on_signal, "usr1")
    try:
        loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
        assert run_until_done(loop, got) == ("usr1", loop)
    finally:
        assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert loop.remove_signal_handler(signal.SIGUSR1) is False
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


@needs_main_thread
def test_signal_wakes_a_blocked_loop(loop: asyncio.AbstractEventLoop) -> None:
    # Nothing else is scheduled: the signal must wake the poll.
    got = loop.create_future()
    loop.add_signal_handler(signal.SIGUSR1, got.set_result, "woken")
    try:
        thread = threading.Timer(0.01, os.kill, (os.getpid(), signal.SIGUSR1))
        thread.start()
        assert run_until_done(loop, got) == "woken"
        thread.join()
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)


@needs_main_thread
def test_signal_handler_replaced(loop: asyncio.AbstractEventLoop) -> None:
    got = loop.create_future()
    loop.add_signal_handler(signal.SIGUSR2, got.set_result, "old")
    loop.add_signal_handler(signal.SIGUSR2, got.set_result, "new")
    try:
        loop.call_soon(os.kill, os.getpid(), signal.SIGUSR2)
        assert run_until_done(loop, got) == "new"
    finally:
        assert loop.remove_signal_handler(signal.SIGUSR2) is True


@needs_main_thread
def test_signal_handler_bad_input(loop: asyncio.AbstractEventLoop) -> None:
    async def coro_fn() -> None:
        pass

    with pytest.raises(TypeError, match=r"^coroutines cannot be used with add_signal_handler\(\)$"):
        loop.add_signal_handler(signal.SIGUSR1, coro_fn)
    with pytest.raises(TypeError, match="^sig must be an int, not 'x'$"):
        loop.add_signal_handler("x", lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^invalid signal number 0$"):
        loop.add_signal_handler(0, lambda: None)
    with pytest.raises(RuntimeError, match="^sig 9 cannot be caught$"):
        loop.add_signal_handler(signal.SIGKILL, lambda: None)
    assert loop.remove_signal_handler(signal.SIGUSR2) is False


@needs_main_thread
def test_close_removes_signal_handlers(loop: asyncio.AbstractEventLoop) -> None:
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    assert signal.getsignal(signal.SIGUSR1) != signal.SIG_DFL
    loop.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
