"""What steploop adds to asyncio's Unix selector loop code: children reaped through pidfds,
a datagram transport that is an `asyncio.DatagramTransport` on every Python version, and
`getaddrinfo` answered on the loop thread for numeric hosts.

Child processes. asyncio 3.11 reaps children through a process-wide "child watcher" (a thread
per child by default), deprecated in 3.12 and removed in 3.14. steploop does what 3.12's
`PidfdChildWatcher` does, per loop and without the watcher API: `os.pidfd_open(pid)` gives an fd
that turns readable when the child exits; the loop watches it like any socket, then reaps the
child with `waitpid(pid, WNOHANG)`. No thread, no signal handler, no global state, and it works
on a loop in any thread. asyncio's own code (and so its child watcher) is used instead where
pidfds are unavailable (not Linux, a kernel before 5.3, a seccomp policy that forbids them), and
when the user installed a child watcher of their own with `asyncio.set_child_watcher` (3.13 and
older): a `FastChildWatcher` reaps every child of the process, so it must be the one to report
ours. The watchers asyncio installs by itself (`ThreadedChildWatcher`, `PidfdChildWatcher`) are
not the user's choice and do the same job: those are left aside.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from asyncio import selector_events, unix_events
from asyncio.log import logger
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._loop import Loop

__all__ = [
    "ChildReaper",
    "DatagramTransport",
    "can_use_pidfd",
    "numeric_addrinfo",
    "user_child_watcher",
]

_SelectorDatagramTransport: type = selector_events._SelectorDatagramTransport  # type: ignore[attr-defined]

if issubclass(_SelectorDatagramTransport, asyncio.DatagramTransport):
    DatagramTransport: type = _SelectorDatagramTransport
else:

    class DatagramTransport(_SelectorDatagramTransport, asyncio.DatagramTransport):  # type: ignore[no-redef]
        """asyncio's selector datagram transport, declared an `asyncio.DatagramTransport` (as
        it is from Python 3.12 on: 3.11 forgot the base class)."""


_pidfd_usable: bool | None = None


def can_use_pidfd() -> bool:
    """Whether this process may open pidfds (asked once: the answer cannot change)."""
    global _pidfd_usable
    if _pidfd_usable is None:
        try:
            os.close(os.pidfd_open(os.getpid(), 0))
        except (AttributeError, OSError):  # not Linux, too old a kernel, or seccomp
            _pidfd_usable = False
        else:
            _pidfd_usable = True
    return _pidfd_usable


_DEFAULT_WATCHERS = tuple(
    getattr(unix_events, name)
    for name in ("ThreadedChildWatcher", "PidfdChildWatcher")
    if hasattr(unix_events, name)
)


def user_child_watcher() -> Any:
    """The child watcher the user installed on the current policy, if any (see module doc).

    Reads the policy's attribute: `get_child_watcher()` would create one (and warn on 3.12+)."""
    watcher = getattr(asyncio.get_event_loop_policy(), "_watcher", None)
    if watcher is None or isinstance(watcher, _DEFAULT_WATCHERS):
        return None
    return watcher


class ChildReaper:
    """Reaps the loop's child processes and reports their exit to their transports.

    `watch` registers a child; its pidfd is watched with the loop's own reader machinery.
    Owned by one loop; only touched from that loop's thread (the fallback threads below only
    call `call_soon_threadsafe`).
    """

    def __init__(self, loop: Loop) -> None:
        self._loop = loop
        self._pidfds: dict[int, int] = {}  # pid -> pidfd, for children not yet reaped

    def watch(self, transport: Any) -> None:
        """Report `transport`'s child's exit code to `transport._process_exited` once it exits."""
        pid: int = transport.get_pid()
        try:
            pidfd = os.pidfd_open(pid, 0)
        except OSError:  # EMFILE, say: reap this one child from a thread instead
            self._wait_in_thread(pid, transport)
            return
        self._pidfds[pid] = pidfd
        self._loop._add_reader(pidfd, self._on_exit, pid, transport)

    def _on_exit(self, pid: int, transport: Any) -> None:
        try:
            reaped, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            # Reaped by someone else: Popen.poll() in transport.close() does it when the child
            # exits just before; it kept the status. Otherwise the status is lost (asyncio's
            # watchers report 255 in that case, and say so).
            returncode = transport._proc.returncode if transport._proc is not None else None
            if returncode is None:
                returncode = 255
                logger.warning(
                    "child process pid %d exit status already read:  will report returncode 255",
                    pid,
                )
        else:
            if reaped == 0:  # not exited after all: keep watching
                return
            returncode = os.waitstatus_to_exitcode(status)
        self._forget(pid)
        if self._loop.get_debug():
            logger.debug("process %s exited with returncode %s", pid, returncode)
        # asyncio's watchers report through call_soon_threadsafe: the transport learns of the
        # exit one iteration after the reaping, here as there.
        self._loop.call_soon(transport._process_exited, returncode)

    def _forget(self, pid: int) -> None:
        pidfd = self._pidfds.pop(pid)
        self._loop._remove_reader(pidfd)
        os.close(pidfd)

    def _wait_in_thread(self, pid: int, transport: Any) -> None:
        loop = self._loop

        def wait() -> None:
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:
                returncode = 255
            else:
                returncode = os.waitstatus_to_exitcode(status)
            if not loop.is_closed():
                loop.call_soon_threadsafe(transport._process_exited, returncode)

        threading.Thread(target=wait, name=f"steploop-waitpid-{pid}", daemon=True).start()

    def close(self) -> None:
        """The loop closes: stop watching. A child still running is reaped by a thread when it
        exits (nobody will hear of it, but it leaves no zombie behind)."""
        for pid in list(self._pidfds):
            self._forget(pid)
            try:
                reaped, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if reaped == 0:
                threading.Thread(
                    target=_reap_quietly, args=(pid,), name=f"steploop-waitpid-{pid}", daemon=True
                ).start()


def _reap_quietly(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


async def make_subprocess_transport(
    loop: Loop,
    reaper: ChildReaper,
    protocol: asyncio.BaseProtocol,
    args: Any,
    shell: bool,
    stdin: Any,
    stdout: Any,
    stderr: Any,
    bufsize: int,
    extra: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """asyncio's `_make_subprocess_transport` with `reaper` in place of the child watcher."""
    waiter = loop.create_future()
    transport = unix_events._UnixSubprocessTransport(  # type: ignore[attr-defined]
        loop, protocol, args, shell, stdin, stdout, stderr, bufsize,
        waiter=waiter, extra=extra, **kwargs,
    )  # fmt: skip
    reaper.watch(transport)
    try:
        await waiter
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException:
        transport.close()
        await transport._wait()
        raise
    return transport


_AI_NUMERICSERV: int = getattr(socket, "AI_NUMERICSERV", 0)


def numeric_addrinfo(
    host: Any, port: Any, family: int, socktype: int, proto: int, flags: int
) -> list[Any] | None:
    """`socket.getaddrinfo` for a numeric IP host and a numeric port, or None for anything
    else. Such a look-up never touches DNS or /etc/services, so it can run on the loop thread
    instead of going to the executor (the answer is the same: it is the same libc call)."""
    if isinstance(host, bytes):
        try:
            host = host.decode("ascii")
        except UnicodeError:
            return None
    if not isinstance(host, str):
        return None
    if isinstance(port, (str, bytes)):
        if not port.isdigit():
            return None
        port = int(port)
    elif port is not None and not isinstance(port, int):
        return None
    for af in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(af, host)
        except OSError:
            continue
        try:
            return socket.getaddrinfo(
                host, port, family, socktype, proto, flags | socket.AI_NUMERICHOST | _AI_NUMERICSERV
            )
        except socket.gaierror:
            return None  # let the ordinary path raise what it raises
    return None
