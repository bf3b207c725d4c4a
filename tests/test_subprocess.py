"""Pipes and child processes: `connect_read_pipe`/`connect_write_pipe`, `subprocess_exec`/
`_shell` and `asyncio.create_subprocess_*` with pipes, `communicate`, `wait`, `kill`,
`returncode`, on asyncio and steploop; and how steploop reaps children (pidfds, no child
watcher)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import warnings
from typing import Any

import pytest
from loop_helpers import new_loop_of_kind
from net_helpers import Collector, no_leaked_fds, open_fds, run  # noqa: F401 (no_leaked_fds: autouse)

PY = sys.executable
PIPE = asyncio.subprocess.PIPE


# ---------------------------------------------------------------- pipes


def test_read_pipe(loop: asyncio.AbstractEventLoop) -> None:
    rfd, wfd = os.pipe()

    async def main() -> tuple[bytes, list[str]]:
        rfile = os.fdopen(rfd, "rb", 0)
        tr, proto = await loop.connect_read_pipe(lambda: Collector(loop), rfile)
        assert isinstance(tr, asyncio.ReadTransport)
        assert tr.get_extra_info("pipe") is rfile
        assert tr.is_reading()
        tr.pause_reading()
        os.write(wfd, b"through ")
        for _ in range(5):
            await asyncio.sleep(0)
        assert proto.data == b""
        tr.resume_reading()
        os.write(wfd, b"a pipe")
        await proto.wait_for(14)
        os.close(wfd)
        assert await proto.lost is None  # EOF closes a read pipe
        return bytes(proto.data), proto.events

    data, events = run(loop, main())
    assert data == b"through a pipe"
    assert events == ["made", "eof", "lost"]


def test_write_pipe(loop: asyncio.AbstractEventLoop) -> None:
    rfd, wfd = os.pipe()
    os.set_blocking(rfd, False)
    data = os.urandom(1_000_000)  # far more than a pipe buffer holds

    async def main() -> bytes:
        wfile = os.fdopen(wfd, "wb", 0)
        tr, proto = await loop.connect_write_pipe(lambda: Collector(loop), wfile)
        assert isinstance(tr, asyncio.WriteTransport)
        assert tr.get_extra_info("pipe") is wfile
        assert tr.can_write_eof()
        tr.write(data)
        assert tr.get_write_buffer_size() > 0
        tr.write_eof()
        assert tr.is_closing()
        chunks = []
        with os.fdopen(rfd, "rb", 0) as rfile:
            while chunk := await loop.run_in_executor(None, _read_blocking, rfile):
                chunks.append(chunk)
        await proto.lost
        return b"".join(chunks)

    assert run(loop, main()) == data


def _read_blocking(f: Any) -> bytes:
    os.set_blocking(f.fileno(), True)
    data: bytes = f.read(65536)
    return data


def test_write_pipe_reader_gone(loop: asyncio.AbstractEventLoop) -> None:
    # The read end closes: the write transport sees it (a pipe's write end turns readable on
    # the reader's close) and is lost with BrokenPipeError.
    rfd, wfd = os.pipe()

    async def main() -> BaseException | None:
        wfile = os.fdopen(wfd, "wb", 0)
        tr, proto = await loop.connect_write_pipe(lambda: Collector(loop), wfile)
        os.close(rfd)
        tr.write(b"x" * 1_000_000)
        exc: BaseException | None = await proto.lost
        return exc

    exc = run(loop, main())
    assert exc is None or isinstance(exc, BrokenPipeError)


def test_pipe_of_wrong_kind(loop: asyncio.AbstractEventLoop) -> None:
    import tempfile

    with tempfile.TemporaryFile() as f, pytest.raises(ValueError, match="Pipe transport is"):
        run(loop, loop.connect_read_pipe(asyncio.Protocol, f))


# ---------------------------------------------------------------- processes


def test_create_subprocess_exec_all_pipes(loop: asyncio.AbstractEventLoop) -> None:
    code = "import sys; d = sys.stdin.read(); sys.stdout.write(d.upper()); sys.stderr.write(d)"

    async def main() -> tuple[bytes, bytes, int | None]:
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", code, stdin=PIPE, stdout=PIPE, stderr=PIPE
        )
        assert proc.returncode is None
        assert proc.pid > 0
        out, err = await proc.communicate(b"x" * 200_000 + b"end")
        return out, err, proc.returncode

    out, err, code_ = run(loop, main())
    assert out == b"X" * 200_000 + b"END"
    assert err == b"x" * 200_000 + b"end"
    assert code_ == 0


def test_create_subprocess_shell(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> tuple[bytes, int]:
        proc = await asyncio.create_subprocess_shell(
            'read x; echo "got $x"; exit 3', stdin=PIPE, stdout=PIPE
        )
        out, _ = await proc.communicate(b"line\n")
        return out, await proc.wait()

    assert run(loop, main()) == (b"got line\n", 3)


def test_stderr_to_stdout_and_devnull(loop: asyncio.AbstractEventLoop) -> None:
    code = "import sys; print('out'); sys.stdout.flush(); print('err', file=sys.stderr)"

    async def main() -> tuple[bytes, bytes | None]:
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", code, stdin=subprocess.DEVNULL, stdout=PIPE, stderr=subprocess.STDOUT
        )
        out, err = await proc.communicate()
        return out, err

    assert run(loop, main()) == (b"out\nerr\n", None)


def test_streams_line_by_line(loop: asyncio.AbstractEventLoop) -> None:
    code = "import sys\nfor line in sys.stdin:\n    print(line.strip()[::-1], flush=True)"

    async def main() -> list[bytes]:
        proc = await asyncio.create_subprocess_exec(PY, "-c", code, stdin=PIPE, stdout=PIPE)
        assert proc.stdin is not None and proc.stdout is not None
        replies = []
        for word in (b"abc", b"hello"):
            proc.stdin.write(word + b"\n")
            await proc.stdin.drain()
            replies.append(await proc.stdout.readline())
        proc.stdin.close()
        await proc.stdin.wait_closed()
        assert await proc.stdout.read() == b""
        assert await proc.wait() == 0
        return replies

    assert run(loop, main()) == [b"cba\n", b"olleh\n"]


def test_kill_terminate_send_signal(loop: asyncio.AbstractEventLoop) -> None:
    async def start() -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", "import sys; print('ready', flush=True); sys.stdin.read()",
            stdin=PIPE, stdout=PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        assert await proc.stdout.readline() == b"ready\n"
        return proc

    async def main() -> list[int]:
        codes = []
        for stop in ("kill", "terminate", "send_signal"):
            proc = await start()
            if stop == "send_signal":
                proc.send_signal(signal.SIGUSR1)
            else:
                getattr(proc, stop)()
            codes.append(await proc.wait())
            assert proc.returncode == codes[-1]
            with pytest.raises(ProcessLookupError):
                proc.kill()  # a reaped child cannot be signalled
        return codes

    assert run(loop, main()) == [-signal.SIGKILL, -signal.SIGTERM, -signal.SIGUSR1]


def test_wait_from_several_tasks(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> list[int]:
        proc = await asyncio.create_subprocess_exec(PY, "-c", "raise SystemExit(7)")
        return list(await asyncio.gather(proc.wait(), proc.wait(), proc.wait()))

    assert run(loop, main()) == [7, 7, 7]


def test_many_children_at_once(loop: asyncio.AbstractEventLoop) -> None:
    async def child(i: int) -> tuple[bytes, int]:
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", f"echo {i}; exit {i % 5}", stdout=PIPE
        )
        out, _ = await proc.communicate()
        assert proc.returncode is not None
        return out, proc.returncode

    async def main() -> list[tuple[bytes, int]]:
        return list(await asyncio.gather(*(child(i) for i in range(20))))

    assert run(loop, main()) == [(f"{i}\n".encode(), i % 5) for i in range(20)]


def test_subprocess_exec_protocol_and_transport(loop: asyncio.AbstractEventLoop) -> None:
    class Proto(asyncio.SubprocessProtocol):
        def __init__(self) -> None:
            self.out = bytearray()
            self.events: list[Any] = []
            self.exited = loop.create_future()
            self.lost = loop.create_future()

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.events.append("made")

        def pipe_data_received(self, fd: int, data: bytes | str) -> None:
            assert isinstance(data, bytes)
            self.out += data

        def pipe_connection_lost(self, fd: int, exc: BaseException | None) -> None:
            self.events.append(("pipe_lost", fd))

        def process_exited(self) -> None:
            self.events.append("exited")
            self.exited.set_result(None)

        def connection_lost(self, exc: BaseException | None) -> None:
            self.events.append("lost")
            self.lost.set_result(exc)

    async def main() -> tuple[Any, ...]:
        tr, proto = await loop.subprocess_exec(
            Proto, PY, "-c", "import sys; sys.stdout.write(sys.stdin.read())",
            stdin=PIPE, stdout=PIPE, stderr=None,
        )  # fmt: skip
        assert isinstance(tr, asyncio.SubprocessTransport)
        assert tr.get_pid() > 0
        assert tr.get_returncode() is None
        assert tr.get_pipe_transport(2) is None
        stdin = tr.get_pipe_transport(0)
        assert isinstance(stdin, asyncio.WriteTransport)
        assert isinstance(tr.get_pipe_transport(1), asyncio.ReadTransport)
        assert tr.get_extra_info("subprocess").pid == tr.get_pid()
        stdin.write(b"echoed")
        stdin.write_eof()
        await proto.lost
        assert proto.exited.done()
        code = tr.get_returncode()
        tr.close()
        return bytes(proto.out), code, proto.events

    out, code, events = run(loop, main())
    assert (out, code) == (b"echoed", 0)
    # connection_lost comes last, after the process exited and every pipe closed.
    assert events[0] == "made" and events[-1] == "lost"
    assert sorted(map(str, events[1:-1])) == ["('pipe_lost', 0)", "('pipe_lost', 1)", "exited"]


def test_subprocess_argument_errors(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="universal_newlines must be False"):
            await loop.subprocess_exec(
                asyncio.SubprocessProtocol,
                PY,
                universal_newlines=True,  # type: ignore[arg-type]
            )
        with pytest.raises(ValueError, match="shell must be True"):
            await loop.subprocess_shell(
                asyncio.SubprocessProtocol,
                "true",
                shell=False,  # type: ignore[arg-type]
            )
        with pytest.raises(ValueError, match="cmd must be a string"):
            await loop.subprocess_shell(asyncio.SubprocessProtocol, ["true"])  # type: ignore[arg-type]

    run(loop, main())


def test_missing_program(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        before = open_fds()
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec("/nonexistent/program", stdout=PIPE)
        assert open_fds() <= before  # the pipes made for it are closed again

    run(loop, main())


def test_subprocess_on_a_loop_in_another_thread(new_loop: Any) -> None:
    results: list[Any] = []

    def thread_main() -> None:
        loop = new_loop()
        try:

            async def main() -> tuple[bytes, int]:
                proc = await asyncio.create_subprocess_exec(
                    PY, "-c", "print('from a thread')", stdout=PIPE
                )
                out, _ = await proc.communicate()
                return out, await proc.wait()

            results.append(run(loop, main()))
        except BaseException as exc:  # noqa: BLE001 (reported by the main thread)
            results.append(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=thread_main)
    thread.start()
    thread.join(30)
    assert results == [(b"from a thread\n", 0)]


def test_no_child_watcher_deprecation(loop: asyncio.AbstractEventLoop) -> None:
    # On 3.12+ asyncio's own subprocess code must hide its use of the deprecated watchers; on
    # 3.11 nothing warns. Either way, no DeprecationWarning reaches the user.
    async def main() -> int:
        proc = await asyncio.create_subprocess_exec(PY, "-c", "pass")
        return await proc.wait()

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert run(loop, main()) == 0


# ---------------------------------------------------------------- steploop's reaping


def _pidfds() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[pidfd]":
                count += 1
        except OSError:
            pass
    return count


@pytest.mark.steploop_only
def test_steploop_reaps_through_pidfds(monkeypatch: pytest.MonkeyPatch) -> None:
    from steploop import _unix

    if not _unix.can_use_pidfd():
        pytest.skip("pidfds are not available here")

    def no_watchers(*args: Any) -> Any:
        raise AssertionError("asyncio's child watcher was used")

    monkeypatch.setattr(asyncio, "get_child_watcher", no_watchers)
    monkeypatch.setattr(asyncio.events, "get_child_watcher", no_watchers)
    loop = new_loop_of_kind("steploop")
    before = _pidfds()

    async def main() -> tuple[int, int]:
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", "import sys; sys.stdin.read()", stdin=PIPE
        )
        watching = _pidfds() - before
        assert proc.stdin is not None
        proc.stdin.close()
        return watching, await proc.wait()

    try:
        assert run(loop, main()) == (1, 0)
        assert _pidfds() == before  # closed once the child was reaped
    finally:
        loop.close()


@pytest.mark.steploop_only
def test_steploop_close_with_a_running_child() -> None:
    # Closing the loop stops watching (no pidfd left open); the child is still reaped later.
    loop = new_loop_of_kind("steploop")
    before = _pidfds()

    async def main() -> Any:
        return await loop.subprocess_exec(
            asyncio.SubprocessProtocol, PY, "-c", "import sys; sys.stdin.read()", stdin=PIPE
        )

    tr, _ = run(loop, main())
    pid = tr.get_pid()
    tr.close()  # kills the child (it is still running)
    loop.close()
    assert _pidfds() == before
    # A helper thread reaps the child once it is dead: no zombie remains.
    for _ in range(500):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        threading.Event().wait(0.01)
    else:
        pytest.fail(f"child {pid} still exists (a zombie?)")


@pytest.mark.steploop_only
def test_steploop_without_pidfds_uses_asyncios_code(monkeypatch: pytest.MonkeyPatch) -> None:
    # Where pidfd_open is missing or forbidden, children are reaped as asyncio reaps them.
    from steploop import _unix

    monkeypatch.setattr(_unix, "_pidfd_usable", False)
    monkeypatch.setattr(os, "pidfd_open", None)  # would fail loudly if still called
    loop = new_loop_of_kind("steploop")

    async def main() -> tuple[bytes, int]:
        proc = await asyncio.create_subprocess_exec(PY, "-c", "print('fallback')", stdout=PIPE)
        out, _ = await proc.communicate()
        return out, await proc.wait()

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: the watcher API
            assert run(loop, main()) == (b"fallback\n", 0)
    finally:
        loop.close()


# ---------------------------------------------------------------- a watcher the user installed

needs_watcher_api = pytest.mark.skipif(
    not hasattr(asyncio, "set_child_watcher"), reason="child watchers are gone (3.14+)"
)


@needs_watcher_api
def test_user_installed_inactive_watcher(loop: asyncio.AbstractEventLoop) -> None:
    # CPython's GenericWatcherTests: a watcher the user installed is asked first.
    from unittest import mock

    watcher = mock.create_autospec(
        asyncio.AbstractChildWatcher,
        **{"__enter__.return_value.is_active.return_value": False},
    )

    async def main() -> None:
        with pytest.raises(RuntimeError, match="is not activated"):
            await asyncio.create_subprocess_exec(PY, "-c", "pass")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the watcher API, 3.12+
        asyncio.set_child_watcher(watcher)
        try:
            run(loop, main())
        finally:
            asyncio.set_child_watcher(None)  # type: ignore[arg-type]
    watcher.add_child_handler.assert_not_called()


@needs_watcher_api
def test_user_installed_fast_child_watcher(loop: asyncio.AbstractEventLoop) -> None:
    # FastChildWatcher reaps every child of the process: it must be the one that reports ours.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        watcher = asyncio.FastChildWatcher()
        watcher.attach_loop(loop)
        asyncio.set_child_watcher(watcher)

    async def main() -> list[int]:
        async def child(code: int) -> int:
            proc = await asyncio.create_subprocess_exec(PY, "-c", f"raise SystemExit({code})")
            return await proc.wait()

        return list(await asyncio.gather(*(child(i) for i in range(4))))

    try:
        assert run(loop, main()) == [0, 1, 2, 3]
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_child_watcher(None)  # type: ignore[arg-type]
