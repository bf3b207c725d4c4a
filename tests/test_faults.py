"""Fault injection (asyncio and steploop): each fault gets the behaviour asyncio has, and no
crash. Most tests are differential: the scenario runs on a loop of the test's kind and on a
fresh asyncio loop, and the observations (exception types, exception-handler messages, what
ran) must be equal.

Faults: fds closed behind the loop's back while watched, a socket reset in the middle of a
large write, EMFILE on accept (RLIMIT_NOFILE lowered, in a subprocess), protocols and
callbacks raising at every entry point, the exception handler itself raising, a loop closed
from inside a callback, fork() in the middle of a run (the child makes a fresh loop), and GC
finalizers that schedule callbacks while close() drops the queues.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import re
import socket
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from loop_helpers import new_loop_of_kind, run_briefly, run_until_done

_ADDR = re.compile(r"0x[0-9a-fA-F]+")


def mask(text: str) -> str:
    return _ADDR.sub("0x?", text)


Scenario = Callable[[asyncio.AbstractEventLoop, list[Any]], None]


def observe(kind: str, scenario: Scenario) -> list[Any]:
    """Run `scenario(loop, trace)` on a new loop of `kind` whose exception handler records
    (message, exception type) into the trace; the trace is returned."""
    loop = new_loop_of_kind(kind)
    trace: list[Any] = []

    def handler(_loop: Any, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        trace.append(("handler", mask(context["message"]), type(exc).__name__ if exc else None))

    loop.set_exception_handler(handler)
    try:
        scenario(loop, trace)
    except BaseException as exc:  # noqa: BLE001 (part of the observation)
        trace.append(("raised", type(exc).__name__, mask(str(exc))))
    finally:
        if not loop.is_closed():
            loop.close()
    return trace


def same_as_asyncio(kind: str, scenario: Scenario) -> list[Any]:
    ref = observe("asyncio", scenario)
    got = observe(kind, scenario)
    assert got == ref
    return got


def outcome(fn: Callable[[], Any]) -> Any:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001
        return ("raised", type(exc).__name__)
    return "ok"


# ---------------------------------------------------------------- fds closed behind its back


def test_reader_fd_closed_then_number_reused(loop_kind: str) -> None:
    def scenario(loop: asyncio.AbstractEventLoop, trace: list[Any]) -> None:
        r, w = os.pipe()
        loop.add_reader(r, lambda: trace.append("old reader"))
        os.close(r)
        os.close(w)
        run_briefly(loop, 2)
        r2, w2 = os.pipe()  # very likely the same numbers again
        try:
            trace.append(("reused", r2 == r))
            trace.append(
                (
                    "add_reader on reused",
                    outcome(
                        lambda: loop.add_reader(
                            r2, lambda: (trace.append("new reader"), loop.remove_reader(r2))
                        )
                    ),
                )
            )
            os.write(w2, b"x")
            run_briefly(loop, 3)
            trace.append(("remove_reader", outcome(lambda: loop.remove_reader(r2))))
        finally:
            os.close(r2)
            os.close(w2)
        trace.append(("remove after close", outcome(lambda: loop.remove_reader(r2))))
        run_briefly(loop)

    same_as_asyncio(loop_kind, scenario)


def test_writer_fd_closed_behind_the_loops_back(loop_kind: str) -> None:
    def scenario(loop: asyncio.AbstractEventLoop, trace: list[Any]) -> None:
        a, b = socket.socketpair()
        fd = a.fileno()
        loop.add_writer(fd, lambda: trace.append("writable"))
        run_briefly(loop)  # writable once at least
        a.close()
        b.close()
        n = len(trace)
        run_briefly(loop, 3)
        trace.append(("calls after close", len(trace) - n))
        trace.append(("remove_writer", outcome(lambda: loop.remove_writer(fd))))
        loop.call_soon(trace.append, "still running")
        run_briefly(loop)

    trace = same_as_asyncio(loop_kind, scenario)
    assert "still running" in trace


def test_add_reader_on_closed_fd(loop_kind: str) -> None:
    def scenario(loop: asyncio.AbstractEventLoop, trace: list[Any]) -> None:
        r, w = os.pipe()
        os.close(r)
        os.close(w)
        trace.append(("add_reader", outcome(lambda: loop.add_reader(r, print))))
        trace.append(("add_writer", outcome(lambda: loop.add_writer(w, print))))
        s = socket.socket()
        s.close()
        trace.append(("closed socket", outcome(lambda: loop.add_reader(s, print))))
        run_briefly(loop)

    same_as_asyncio(loop_kind, scenario)


# ---------------------------------------------------------------- reset in the middle of a write


def test_socket_reset_mid_write(loop: asyncio.AbstractEventLoop) -> None:
    lost: list[BaseException | None] = []

    class Writer(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def connection_lost(self, exc: BaseException | None) -> None:
            lost.append(exc)

    async def main() -> None:
        accepted: asyncio.Future[socket.socket] = loop.create_future()
        lsock = socket.create_server(("127.0.0.1", 0))
        lsock.setblocking(False)
        port = lsock.getsockname()[1]
        try:
            client_fut = asyncio.ensure_future(loop.create_connection(Writer, "127.0.0.1", port))
            peer, _ = await loop.sock_accept(lsock)
            accepted.set_result(peer)
            tr, _ = await client_fut
            tr.write(b"x" * (8 << 20))  # far more than the socket buffers hold
            assert tr.get_write_buffer_size() > 0
            peer.recv(1000)  # part of it arrives...
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            peer.close()  # ...then the peer resets
            while not lost:
                await asyncio.sleep(0)
                if tr.get_write_buffer_size() and not tr.is_closing():
                    tr.write(b"y" * 1000)
        finally:
            lsock.close()

    run_until_done(loop, asyncio.ensure_future(main(), loop=loop))
    assert len(lost) == 1
    assert isinstance(lost[0], ConnectionError)


# ---------------------------------------------------------------- EMFILE on accept

EMFILE_CHILD = textwrap.dedent(
    """
    import asyncio, errno, json, os, resource, socket, sys
    sys.path.insert(0, {tests!r})
    from loop_helpers import new_loop_of_kind

    loop = new_loop_of_kind({kind!r})
    events = []

    def handler(loop, context):
        exc = context.get("exception")
        events.append(["handler", context["message"], type(exc).__name__,
                       getattr(exc, "errno", None) == errno.EMFILE])

    loop.set_exception_handler(handler)
    accepted = []

    async def main():
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        clients = []
        for _ in range(3):  # connected through the backlog, not yet accepted
            c = socket.socket()
            c.connect(("127.0.0.1", port))
            clients.append(c)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        top = max(int(fd) for fd in os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (top + 1, hard))  # no new fd possible
        for _ in range(5):
            await asyncio.sleep(0)
        events.append(["handler calls", sum(1 for e in events if e[0] == "handler") > 0])
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        # asyncio retries accepting after ACCEPT_RETRY_DELAY (1 s); wait for that
        while server._active_count < 3:
            await asyncio.sleep(0.05)
        events.append(["accepted after restore", server._active_count])
        for c in clients:
            c.close()
        server.close()

    loop.run_until_complete(asyncio.wait_for(main(), 30))
    loop.close()
    print(json.dumps(events))
    """
)


def run_child(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_emfile_on_accept(loop_kind: str) -> None:
    tests = str(Path(__file__).parent)
    results = {}
    for kind in dict.fromkeys(("asyncio", loop_kind)):
        proc = run_child(EMFILE_CHILD.format(tests=tests, kind=kind))
        assert proc.returncode == 0, proc.stderr
        results[kind] = json.loads(proc.stdout.splitlines()[-1])
    ref = results["asyncio"]
    assert ["handler calls", True] in ref
    assert ref[-1] == ["accepted after restore", 3]
    # the number of handler calls depends on how often the loop looked: compare the set
    assert {tuple(e) for e in results[loop_kind]} == {tuple(e) for e in ref}


# ---------------------------------------------------------------- raising at every entry point

PROTOCOL_ENTRY_POINTS = ["connection_made", "data_received", "eof_received", "connection_lost"]


@pytest.mark.parametrize("where", PROTOCOL_ENTRY_POINTS)
def test_protocol_raising(loop_kind: str, where: str) -> None:
    def scenario(loop: asyncio.AbstractEventLoop, trace: list[Any]) -> None:
        class P(asyncio.Protocol):
            def connection_made(self, transport: Any) -> None:
                trace.append("made")
                self.transport = transport
                if where == "connection_made":
                    raise ValueError(where)

            def data_received(self, data: bytes) -> None:
                trace.append(("data", data))
                if where == "data_received":
                    raise ValueError(where)

            def eof_received(self) -> None:
                trace.append("eof")
                if where == "eof_received":
                    raise ValueError(where)

            def connection_lost(self, exc: BaseException | None) -> None:
                trace.append(("lost", type(exc).__name__ if exc else None))
                closed.set_result(None)
                if where == "connection_lost":
                    raise ValueError(where)

        closed = loop.create_future()

        async def main() -> None:
            a, b = socket.socketpair()
            try:
                tr, _ = await loop.connect_accepted_socket(P, a)
                b.sendall(b"hello")
                while len(trace) < 2:
                    await asyncio.sleep(0)
                b.shutdown(socket.SHUT_WR)
                await asyncio.wait_for(closed, 10)
                trace.append(("closing", tr.is_closing()))
                for _ in range(3):
                    await asyncio.sleep(0)
            finally:
                b.close()

        run_until_done(loop, asyncio.ensure_future(main(), loop=loop))

    trace = same_as_asyncio(loop_kind, scenario)
    assert any(t[0] == "handler" for t in trace if isinstance(t, tuple))


@pytest.mark.parametrize("where", ["pause_writing", "resume_writing"])
def test_flow_control_callback_raising(loop_kind: str, where: str) -> None:
    def scenario(loop: asyncio.AbstractEventLoop, trace: list[Any]) -> None:
        class P(asyncio.Protocol):
            def pause_writing(self) -> None:
                trace.append("pause")
                if where == "pause_writing":
                    raise ValueError(where)

            def resume_writing(self) -> None:
                trace.append("resume")
                if where == "resume_writing":
                    raise ValueError(where)

        async def main() -> None:
            a, b = socket.socketpair()
            try:
                tr, _ = await loop.connect_accepted_socket(P, a)
                tr.set_write_buffer_limits(high=1000, low=10)
                tr.write(b"x" * (4 << 20))
                b.setblocking(False)
                while tr.get_write_buffer_size():
                    try:
                        b.recv(1 << 20)
                    except BlockingIOError:
                        pass
                    await asyncio.sleep(0)
                for _ in range(3):
                    await asyncio.sleep(0)
                trace.append(("closing", tr.is_closing()))
                tr.close()
                await asyncio.sleep(0)
            finally:
                b.close()

        run_until_done(loop, asyncio.ensure_future(main(), loop=loop))

    trace = same_as_asyncio(loop_kind, scenario)
    assert ("handler", f"protocol.{where}() failed", "ValueError") in trace


@pytest.mark.parametrize("where", ["datagram_received", "error_received"])
def test_datagram_protocol_raising(loop_kind: str, where: str) -> None:
    def scenario(loop: asyncio.AbstractEventLoop, trace: list[Any]) -> None:
        class P(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                trace.append(("dgram", data))
                if where == "datagram_received":
                    raise ValueError(where)

            def error_received(self, exc: Exception) -> None:
                trace.append(("error", type(exc).__name__))
                raise ValueError(where)

        async def main() -> None:
            tr, _ = await loop.create_datagram_endpoint(P, local_addr=("127.0.0.1", 0))
            addr = tr.get_extra_info("sockname")
            if where == "datagram_received":
                tr.sendto(b"one", addr)
                tr.sendto(b"two", addr)
                while len(trace) < 2:
                    await asyncio.sleep(0)
            else:
                # connected UDP to a closed port: ECONNREFUSED comes back as error_received
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("127.0.0.1", 0))
                dead = s.getsockname()
                s.close()
                tr2, _ = await loop.create_datagram_endpoint(P, remote_addr=dead)
                tr2.sendto(b"x")
                for _ in range(200):
                    if trace:
                        break
                    await asyncio.sleep(0.01)
                tr2.close()
            for _ in range(3):
                await asyncio.sleep(0)
            trace.append(("closing", tr.is_closing()))
            tr.close()
            await asyncio.sleep(0)

        run_until_done(loop, asyncio.ensure_future(main(), loop=loop))

    same_as_asyncio(loop_kind, scenario)


CALLBACK_ENTRY_POINTS = [
    "call_soon",
    "call_soon_threadsafe",
    "call_later",
    "call_at",
    "add_reader",
    "add_writer",
    "future_done_callback",
    "task",
]


@pytest.mark.parametrize("where", CALLBACK_ENTRY_POINTS)
def test_callback_raising(loop_kind: str, where: str) -> None:
    def scenario(loop: asyncio.AbstractEventLoop, trace: list[Any]) -> None:
        def bad(*args: Any) -> None:
            trace.append(("bad ran", where))
            raise ValueError(where)

        a, b = socket.socketpair()
        try:
            if where == "call_soon":
                loop.call_soon(bad)
            elif where == "call_soon_threadsafe":
                loop.call_soon_threadsafe(bad)
            elif where == "call_later":
                loop.call_later(-1, bad)
            elif where == "call_at":
                loop.call_at(loop.time() - 1, bad)
            elif where == "add_reader":
                b.send(b"x")

                def read_bad() -> None:
                    loop.remove_reader(a)
                    bad()

                loop.add_reader(a, read_bad)
            elif where == "add_writer":

                def write_bad() -> None:
                    loop.remove_writer(a)
                    bad()

                loop.add_writer(a, write_bad)
            elif where == "future_done_callback":
                fut = loop.create_future()
                fut.add_done_callback(bad)
                fut.set_result(1)
            elif where == "task":

                async def coro() -> None:
                    bad()

                task = loop.create_task(coro())
                task.add_done_callback(
                    lambda t: trace.append(("task", type(t.exception()).__name__))
                )
            loop.call_soon(trace.append, "after")
            run_briefly(loop, 3)
            trace.append(("running", loop.is_running(), "closed", loop.is_closed()))
        finally:
            a.close()
            b.close()

    trace = same_as_asyncio(loop_kind, scenario)
    assert ("bad ran", where) in trace


def test_exception_handler_raising(loop_kind: str, caplog: pytest.LogCaptureFixture) -> None:
    def scenario(loop: asyncio.AbstractEventLoop, trace: list[Any]) -> None:
        def handler(_loop: Any, context: dict[str, Any]) -> None:
            trace.append(("handler", context["message"][:21]))
            raise RuntimeError("handler broke")

        loop.set_exception_handler(handler)
        loop.call_soon(lambda: 1 / 0)
        loop.call_soon(trace.append, "after")
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            caplog.clear()
            run_briefly(loop)
        trace.extend(
            (
                "log",
                r.getMessage().split("\n")[0],
                r.exc_info[0].__name__ if r.exc_info and r.exc_info[0] else None,
            )
            for r in caplog.records
        )

    trace = same_as_asyncio(loop_kind, scenario)
    assert ("log", "Unhandled error in exception handler", "RuntimeError") in trace


# ---------------------------------------------------------------- closing from inside


def test_loop_closed_from_inside_a_callback(loop_kind: str) -> None:
    def scenario(loop: asyncio.AbstractEventLoop, trace: list[Any]) -> None:
        def close_it() -> None:
            try:
                loop.close()
            except RuntimeError as exc:
                trace.append(("close", str(exc)))
            trace.append(("closed?", loop.is_closed()))

        loop.call_soon(close_it)
        loop.call_soon(lambda: loop.call_soon(close_it))
        loop.call_soon(trace.append, "after")
        run_briefly(loop, 2)
        trace.append(("after run", loop.is_running(), loop.is_closed()))
        loop.close()
        trace.append(("closed", loop.is_closed()))

    trace = same_as_asyncio(loop_kind, scenario)
    assert ("close", "Cannot close a running event loop") in trace


def test_loop_closed_in_done_callback_of_run_until_complete(loop_kind: str) -> None:
    def scenario(loop: asyncio.AbstractEventLoop, trace: list[Any]) -> None:
        fut = loop.create_future()
        fut.add_done_callback(lambda f: loop.close())
        loop.call_soon(fut.set_result, "v")
        trace.append(("result", loop.run_until_complete(fut)))
        trace.append(("closed", loop.is_closed()))

    same_as_asyncio(loop_kind, scenario)


# ---------------------------------------------------------------- fork in the middle of a run


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_in_the_middle_of_a_run(loop: asyncio.AbstractEventLoop, loop_kind: str) -> None:
    """A callback forks. The child drops the inherited running loop (as Python 3.12 does at
    fork), makes a fresh loop of the same kind, runs timers, a task and a socket pair on it,
    and reports through a pipe the parent watches with add_reader."""
    r, w = os.pipe()
    child_pid: list[int] = []
    report = loop.create_future()

    def fork_now() -> None:
        pid = os.fork()
        if pid == 0:  # child
            status = 1
            try:
                os.close(r)
                asyncio.events._set_running_loop(None)
                child = new_loop_of_kind(loop_kind)

                async def work() -> bytes:
                    a, b = socket.socketpair()
                    a.setblocking(False)
                    b.setblocking(False)
                    await child.sock_sendall(a, b"from child")
                    data = await child.sock_recv(b, 100)
                    a.close()
                    b.close()
                    await asyncio.sleep(0.001)
                    return data

                data = child.run_until_complete(work())
                child.close()
                os.write(w, data)
                status = 0
            finally:
                os._exit(status)
        child_pid.append(pid)
        os.close(w)

    def on_report() -> None:
        loop.remove_reader(r)
        report.set_result(os.read(r, 100))

    loop.add_reader(r, on_report)
    loop.call_soon(fork_now)
    try:
        got = run_until_done(loop, report, guard=30)
    finally:
        os.close(r)
        if child_pid:
            _, status = os.waitpid(child_pid[0], 0)
    assert got == b"from child"
    assert os.waitstatus_to_exitcode(status) == 0
    # the parent's loop still works, its poll and waker untouched by the child
    assert run_until_done(loop, asyncio.ensure_future(asyncio.sleep(0, "ok"), loop=loop)) == "ok"


# ---------------------------------------------------------------- finalizers during close()


class Finalizer:
    """Schedules a callback on the loop when collected; records what happened."""

    def __init__(self, loop: asyncio.AbstractEventLoop, trace: list[Any], name: str) -> None:
        self.loop = loop
        self.trace = trace
        self.name = name

    def __del__(self) -> None:
        try:
            self.loop.call_soon(print, "never")
        except RuntimeError as exc:
            self.trace.append((self.name, "call_soon", str(exc)))
        else:
            self.trace.append((self.name, "call_soon", "accepted"))
        try:
            self.loop.call_later(1, print, "never")
        except RuntimeError as exc:
            self.trace.append((self.name, "call_later", str(exc)))
        else:
            self.trace.append((self.name, "call_later", "accepted"))


def _noop(*args: Any) -> None:
    pass


def test_finalizers_schedule_callbacks_during_close(loop_kind: str) -> None:
    def scenario(loop: asyncio.AbstractEventLoop, trace: list[Any]) -> None:
        loop.call_soon(_noop, Finalizer(loop, trace, "ready"))
        loop.call_later(100, _noop, Finalizer(loop, trace, "timer"))
        h = loop.call_later(100, _noop, Finalizer(loop, trace, "cancelled timer"))
        h.cancel()
        del h
        loop.close()
        gc.collect()
        trace.sort()

    same_as_asyncio(loop_kind, scenario)


def test_pending_task_destroyed_during_close(loop_kind: str) -> None:
    def scenario(loop: asyncio.AbstractEventLoop, trace: list[Any]) -> None:
        async def never() -> None:
            await loop.create_future()

        task = loop.create_task(never())
        run_briefly(loop)  # the task now waits on a future only it references
        del task
        loop.call_soon(_noop, Finalizer(loop, trace, "ready"))
        loop.close()
        gc.collect()

    trace = same_as_asyncio(loop_kind, scenario)
    assert ("handler", "Task was destroyed but it is pending!", None) in trace


def test_finalizer_cycles_through_the_loop_during_close(loop_kind: str) -> None:
    """Callback arguments in reference cycles with the loop, collected by gc while close()
    runs and afterwards: finalizers see a closed loop, nothing crashes."""

    def scenario(loop: asyncio.AbstractEventLoop, trace: list[Any]) -> None:
        for i in range(100):
            f = Finalizer(loop, trace, "cycle")
            f.me = f  # type: ignore[attr-defined]
            if i % 2:
                loop.call_soon(_noop, f)
            else:
                loop.call_later(100 + i, _noop, f)
        del f
        gc.disable()
        try:
            loop.close()
        finally:
            gc.enable()
        gc.collect()
        trace.append(("count", len(trace)))
        del trace[:-1]

    same_as_asyncio(loop_kind, scenario)
