"""`steploop.Loop`: asyncio's event loop API on the steploop engine.

The native base (`_steploop.LoopCore`) implements scheduling, timers, the iteration itself,
`run_forever`, fd watchers and the forced-iteration API. This class adds what asyncio layers on
top of a selector loop — sockets, transports, servers, pipes, subprocesses, signals, executors,
async generators — by inheriting asyncio's own implementation, exactly as asyncio's
`_UnixSelectorEventLoop` does over its selector.
"""

from __future__ import annotations

import asyncio
import collections.abc
import gc
import os
import selectors
import socket
import sys
import threading
import time
import traceback
import weakref
from asyncio import base_events, unix_events
from asyncio.log import logger
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from . import _steploop, _transport, _unix

__all__ = ["Loop"]


def _busy_poll_from_env(value: str) -> float:
    """``STEPLOOP_BUSY_POLL_US`` (microseconds) in seconds."""
    try:
        us = float(value)
    except ValueError:
        us = -1.0
    if not us >= 0.0 or us == float("inf"):
        raise ValueError(
            f"STEPLOOP_BUSY_POLL_US must be a non-negative number of microseconds, got {value!r}"
        )
    return us / 1e6


def _run_foreign(handle: asyncio.Handle) -> None:
    """Run an `asyncio.Handle` created outside steploop (e.g. by a signal) if still live."""
    if not handle.cancelled():
        handle._run()


class _SelectorKey(selectors.SelectorKey):
    pass


class _SelectorView(collections.abc.Mapping):  # type: ignore[type-arg]
    """A read-only, selector-shaped view of the loop's fd watchers.

    asyncio's transports only read `loop._selector` (for their repr); this answers those reads
    from the native fd table.
    """

    def __init__(self, loop: Loop) -> None:
        self._loop = weakref.ref(loop)
        self._fds: set[int] = set()

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        loop = self._loop()
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        if loop is None or loop.is_closed():
            raise KeyError(f"{fileobj!r} is not registered")
        reader, writer = loop._get_reader(fd), loop._get_writer(fd)
        if reader is None and writer is None:
            raise KeyError(f"{fileobj!r} is not registered")
        events = (selectors.EVENT_READ if reader is not None else 0) | (
            selectors.EVENT_WRITE if writer is not None else 0
        )
        return selectors.SelectorKey(fileobj, fd, events, (reader, writer))

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self

    def __getitem__(self, fileobj: Any) -> selectors.SelectorKey:
        return self.get_key(fileobj)

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def close(self) -> None:
        pass


class _Watchdog(threading.Thread):
    """Watches the loop's running callback from another thread; while one runs longer than
    the threshold, logs its repr and the loop thread's *current* Python stack, once."""

    def __init__(self, loop: Loop, threshold: float) -> None:
        super().__init__(name=f"steploop-watchdog-{id(loop):x}", daemon=True)
        self._loop = weakref.ref(loop)
        self.threshold = threshold
        self.stopped = threading.Event()
        self.reported: set[int] = set()

    def run(self) -> None:
        interval = max(self.threshold / 4, 0.001)
        while not self.stopped.wait(interval):
            loop = self._loop()
            if loop is None or loop.is_closed():
                return
            current = loop._watchdog_current()
            if current is None:
                continue
            handle, started, seq = current
            elapsed = time.monotonic() - started  # real time, even on a virtual loop
            if seq in self.reported or elapsed < self.threshold:
                continue
            self.reported.add(seq)
            frame = sys._current_frames().get(loop._thread_id or 0)
            stack = "".join(traceback.format_stack(frame)) if frame is not None else "?\n"
            logger.warning(
                "Blocking: %s has been running for %.3f seconds (watchdog threshold %.3f); "
                "the loop thread is at:\n%s",
                base_events._format_handle(handle),  # type: ignore[attr-defined]
                elapsed,
                self.threshold,
                stack.rstrip("\n"),
            )
            del frame, handle, current


# Loops alive in this process, for the hook below.
_live_loops: weakref.WeakSet[Loop] = weakref.WeakSet()


def _before_full_collection(phase: str, info: dict[str, int]) -> None:
    """`gc.callbacks` hook: before a full collection, each loop tracks the pending handles
    that its caller also kept (the engine leaves handles that only the loop holds untracked
    and visits them itself; see `HandleRef` in crates/steploop-py/src/handle.rs)."""
    if phase == "start" and info.get("generation") == 2:
        for loop in list(_live_loops):
            loop._track_shared_handles()


gc.callbacks.append(_before_full_collection)


class Loop(_steploop.LoopCore, unix_events.SelectorEventLoop):  # type: ignore[misc]
    """An asyncio event loop on the steploop engine.

    A drop-in replacement for the default loop, plus forced iteration as a public API::

        loop = steploop.new_event_loop()
        loop.call_soon(print, "hello")
        report = loop.run_once(timeout=0)   # one iteration, never blocks
        assert report.callbacks == 1
        loop.close()
    """

    def __init__(self, *, reentrant: bool = False) -> None:
        # asyncio's BaseEventLoop state (exception handler, executor, asyncgens, debug
        # from PYTHONASYNCIODEBUG / -X dev, slow_callback_duration...). The selector and the
        # self-pipe of BaseSelectorEventLoop are not created: the engine polls, and the
        # self-pipe is made only if a signal handler needs it.
        base_events.BaseEventLoop.__init__(self)
        # The engine owns the ready queue and the timer heap; asyncio's containers would
        # only mislead whoever inspects them.
        # (typeshed does not describe asyncio's private attributes: hence the ignores.)
        del self._ready  # type: ignore[attr-defined]
        del self._scheduled  # type: ignore[attr-defined]
        self._selector: _SelectorView | None = _SelectorView(self)
        self._transports: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        self._ssock: socket.socket | None = None
        self._csock: socket.socket | None = None
        self._signal_handlers: dict[int, asyncio.Handle] = {}
        # The engine's eventfd waker plays the part of asyncio's self-pipe.
        self._internal_fds += 1  # type: ignore[attr-defined]
        self._reentrant = reentrant
        self._watchdog: _Watchdog | None = None
        self._child_reaper = _unix.ChildReaper(self)
        busy_poll_us = os.environ.get("STEPLOOP_BUSY_POLL_US")
        if busy_poll_us is not None:
            self.set_busy_poll(_busy_poll_from_env(busy_poll_us))
        _live_loops.add(self)

    def _check_running(self) -> None:
        # A reentrant loop may be run again from inside one of its own callbacks.
        if self._reentrant and self._thread_id == threading.get_ident():
            return
        super()._check_running()  # type: ignore[misc]

    async def sock_recv(self, sock: socket.socket, n: int) -> bytes:
        """Receive up to ``n`` bytes from the non-blocking socket ``sock``.

        For a plain non-blocking `socket.socket`, the first attempt and the wait are native:
        no ``BlockingIOError`` is raised and caught, and the reader reads and resolves the
        future itself, with no Python callback and no done callback (see
        crates/steploop-py/src/sock.rs). Anything else (a subclass, which may override
        ``recv``; a socket with a timeout; a non-int size) takes asyncio's path.
        """
        if type(sock) is not socket.socket or type(n) is not int or sock.gettimeout() != 0:
            # asyncio's path: its checks and messages (debug mode refuses a blocking socket).
            return await super().sock_recv(sock, n)
        fd = sock.fileno()
        data = self._sock_recv_try(fd, n)
        if data is not None:
            return data
        fut = self.create_future()
        self._ensure_fd_no_transport(fd)  # type: ignore[attr-defined]
        handle = self._sock_recv_native(fd, fut, n, sock)
        try:
            return await fut  # type: ignore[no-any-return]
        finally:
            # Still our reader (not replaced): the wait was cancelled, remove it as
            # asyncio's _sock_read_done does. After a result the reader removed itself.
            if not handle.cancelled():
                self.remove_reader(fd)

    async def sock_sendall(self, sock: socket.socket, data: Any) -> None:
        """Send ``data`` to the non-blocking socket ``sock``, all of it.

        For ``bytes`` on a plain non-blocking `socket.socket`, the first ``send`` is native (no
        ``BlockingIOError`` raised and caught when the buffer is full); what it does not send
        takes asyncio's path. Anything else takes asyncio's path from the start.
        """
        if type(sock) is not socket.socket or type(data) is not bytes or sock.gettimeout() != 0:
            # asyncio's path: its checks and messages (debug mode refuses a blocking socket).
            return await super().sock_sendall(sock, data)  # type: ignore[no-any-return]
        n = self._sock_send_try(sock.fileno(), data)
        if n == len(data):
            return None
        return await super().sock_sendall(sock, memoryview(data)[n:])  # type: ignore[no-any-return]

    def set_busy_poll(self, limit: float) -> None:
        """Set how long (seconds, at most 1) a wait that may block first polls without blocking.

        Blocking puts the loop thread to sleep, and waking it again costs more than polling
        for a few microseconds when the next event is that near: on a virtual machine, the
        vCPU halts and has to be woken through the hypervisor. So a wait first polls with a
        zero timeout for an adaptive window, as KVM's halt polling does: the window grows
        (from 10 µs, doubling) while waits end soon after it, up to ``limit``, and shrinks
        to nothing when waits last longer than ``limit``. An idle loop does not spin; one
        serving a fast request/response exchange spins at most ``limit`` per wait.

        The default is 100 µs (0 where the process can use one CPU only: what the loop
        waits for could not run while it spins), or ``STEPLOOP_BUSY_POLL_US``
        (microseconds) when a loop is created with it in the environment. ``0`` turns busy polling off: every wait that
        may block blocks at once, as on asyncio. Spinning never changes what an iteration
        sees, only how the loop waits for it; the GIL is released while it spins.
        """
        self._set_busy_poll(limit)

    def get_busy_poll(self) -> float:
        """The busy-poll limit in seconds (see `set_busy_poll`)."""
        return self._busy_poll()

    def set_blocking_watchdog(self, threshold: float | None) -> None:
        """Watch for callbacks that block the loop.

        While one callback has been running longer than ``threshold`` seconds, log (logger
        ``asyncio``, WARNING) its repr and the loop thread's current Python stack, and when it
        ends, its total duration. ``None`` turns the watchdog off (the default: no cost).
        """
        self._set_watchdog(threshold)
        old, self._watchdog = self._watchdog, None
        if old is not None:
            old.stopped.set()
        if threshold is not None:
            self._watchdog = _Watchdog(self, threshold)
            self._watchdog.start()

    def _watchdog_finished(self, handle: Any, duration: float, seq: int) -> None:
        logger.warning(
            "Blocking: %s took %.3f seconds (watchdog threshold %.3f)",
            base_events._format_handle(handle),  # type: ignore[attr-defined]
            duration,
            self._watchdog.threshold if self._watchdog is not None else 0.0,
        )

    def _add_callback(self, handle: asyncio.Handle) -> None:
        """Add an asyncio Handle made elsewhere (signals) to the ready queue."""
        if not handle.cancelled():
            self._call_soon(_run_foreign, (handle,), None)

    def _add_callback_signalsafe(self, handle: asyncio.Handle) -> None:
        self._add_callback(handle)
        self._write_to_self()

    def _write_to_self(self) -> None:
        csock = self._csock
        if csock is None:
            return
        try:
            csock.send(b"\0")
        except OSError:
            if self._debug:
                logger.debug("Fail to write a null byte into the self-pipe socket", exc_info=True)

    def _make_socket_transport(
        self, sock: Any, protocol: Any, waiter: Any = None, *, extra: Any = None,
        server: Any = None,
    ) -> Any:  # fmt: skip
        # asyncio's transport with a native write() for plain sockets (see _transport.py).
        self._ensure_fd_no_transport(sock)  # type: ignore[attr-defined]
        return _transport.make_socket_transport(self, sock, protocol, waiter, extra, server)

    def _make_datagram_transport(
        self, sock: Any, protocol: Any, address: Any = None, waiter: Any = None, extra: Any = None
    ) -> Any:
        # asyncio's own, made an asyncio.DatagramTransport on 3.11 too (see _unix.py).
        if sys.version_info >= (3, 12):
            self._ensure_fd_no_transport(sock)  # type: ignore[attr-defined]
        return _unix.DatagramTransport(self, sock, protocol, address, waiter, extra)

    async def _make_subprocess_transport(  # type: ignore[override]
        self, protocol: Any, args: Any, shell: bool, stdin: Any, stdout: Any, stderr: Any,
        bufsize: int, extra: Any = None, **kwargs: Any,
    ) -> Any:  # fmt: skip
        # Children are reaped through pidfds watched by this loop (see _unix.py), not through
        # asyncio's process-wide child watchers (deprecated in 3.12, gone in 3.14), unless
        # pidfds are unavailable or the user installed a watcher of their own.
        if not _unix.can_use_pidfd() or _unix.user_child_watcher() is not None:
            return await super()._make_subprocess_transport(  # type: ignore[misc]
                protocol, args, shell, stdin, stdout, stderr, bufsize, extra, **kwargs
            )
        return await _unix.make_subprocess_transport(
            self, self._child_reaper, protocol, args, shell, stdin, stdout, stderr, bufsize,
            extra, **kwargs,
        )  # fmt: skip

    async def getaddrinfo(  # type: ignore[override]
        self, host: Any, port: Any, *, family: int = 0, type: int = 0, proto: int = 0,
        flags: int = 0,
    ) -> list[Any]:  # fmt: skip
        # A numeric host and port need no resolver: answer on the loop thread, without the
        # executor round trip (debug mode keeps asyncio's path and its timing log).
        if not self._debug:
            self._check_closed()  # type: ignore[attr-defined]
            infos = _unix.numeric_addrinfo(host, port, family, type, proto, flags)
            if infos is not None:
                return infos
        return await super().getaddrinfo(  # type: ignore[no-any-return]
            host, port, family=family, type=type, proto=proto, flags=flags
        )

    def _process_events(self, event_list: Any) -> None:
        """The engine dispatches fd events itself; nothing is left for this hook."""

    def add_signal_handler(  # type: ignore[override]
        self, sig: int, callback: Callable[..., object], *args: Any
    ) -> None:
        """Add a handler for a UNIX signal. Raise ValueError if the signal number is invalid or
        uncatchable. Raise RuntimeError if there is a problem setting up the handler."""
        if self._csock is None and not self.is_closed():
            self._make_self_pipe()  # type: ignore[attr-defined]
        super().add_signal_handler(sig, callback, *args)

    def close(self) -> None:
        """Close the loop: drop pending callbacks, shut the default executor down.

        The loop must not be running. Pending callbacks are lost. This is idempotent and
        irreversible.
        """
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        if not sys.is_finalizing():
            for sig in list(self._signal_handlers):
                self.remove_signal_handler(sig)
        elif self._signal_handlers:
            import warnings

            warnings.warn(
                f"Closing the loop {self!r} on interpreter shutdown "
                f"stage, skipping signal handlers removal",
                ResourceWarning,
                source=self,
            )
            self._signal_handlers.clear()
        if self._watchdog is not None:
            self._watchdog.stopped.set()
            self._watchdog = None
        if self._ssock is not None:
            self._close_self_pipe()  # type: ignore[attr-defined]
        if self._debug:
            logger.debug("Close %r", self)
        self._child_reaper.close()
        self._close_core()
        self._internal_fds -= 1  # type: ignore[attr-defined]
        self._selector = None  # as asyncio: transports' reprs read it to tell "open" from "closed"
        self._executor_shutdown_called = True
        executor: Any = self._default_executor  # type: ignore[has-type]
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)

    def __repr__(self) -> str:
        return (
            f"<{self.__class__.__name__} running={self.is_running()} "
            f"closed={self.is_closed()} debug={self.get_debug()}>"
        )
