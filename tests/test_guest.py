"""Guest mode: `steploop.start_guest_run` inside a minimal host loop built on `queue.Queue`.

The host loop is a thread that runs the functions put on its queue: the only thing guest
mode asks of a host. Every callback of the guest must run on the host's thread.
(The same with Tk as the host: tests/test_tkinter.py.)
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
import steploop

pytestmark = pytest.mark.steploop_only


class Host:
    """A host event loop: runs what it is given, in order, on the thread that calls run()."""

    def __init__(self) -> None:
        self.todo: queue.Queue[Callable[[], object]] = queue.Queue()
        self.thread_id: int | None = None
        self.steps = 0
        self.outcomes: list[asyncio.Task[Any]] = []

    def run_sync_soon_threadsafe(self, fn: Callable[[], object]) -> None:
        self.todo.put(fn)

    def done_callback(self, outcome: asyncio.Task[Any]) -> None:
        assert threading.get_ident() == self.thread_id
        self.outcomes.append(outcome)

    def run(self, until: Callable[[], bool], timeout: float = 30.0) -> None:
        self.thread_id = threading.get_ident()
        while not until():
            fn = self.todo.get(timeout=timeout)  # a hung guest fails the test
            self.steps += 1
            fn()

    def start(self, coro: Coroutine[Any, Any, Any], **kwargs: Any) -> steploop.GuestRun[Any]:
        self.thread_id = threading.get_ident()
        return steploop.start_guest_run(
            coro,
            run_sync_soon_threadsafe=self.run_sync_soon_threadsafe,
            done_callback=self.done_callback,
            **kwargs,
        )

    def run_to_completion(self, coro: Coroutine[Any, Any, Any], **kwargs: Any) -> asyncio.Task[Any]:
        guest = self.start(coro, **kwargs)
        self.run(until=lambda: bool(self.outcomes))
        assert guest.done()
        assert len(self.outcomes) == 1
        return self.outcomes[0]


@pytest.fixture
def host() -> Iterator[Host]:
    yield Host()


def guest_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("steploop-guest-")]


def test_result_and_callbacks_on_the_host_thread(host: Host) -> None:
    threads: set[int] = set()

    async def main() -> str:
        loop = asyncio.get_running_loop()
        threads.add(threading.get_ident())
        await asyncio.sleep(0.01)
        threads.add(threading.get_ident())
        fut = loop.create_future()
        loop.call_later(0.01, fut.set_result, "timer")
        threads.add(threading.get_ident())
        return await fut

    outcome = host.run_to_completion(main())
    assert outcome.result() == "timer"
    assert outcome.exception() is None
    assert threads == {host.thread_id}
    assert host.steps >= 3
    assert guest_threads() == []  # the helper thread has exited


def test_exception_outcome(host: Host) -> None:
    async def main() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    outcome = host.run_to_completion(main())
    assert isinstance(outcome.exception(), ValueError)
    with pytest.raises(ValueError, match="boom"):
        outcome.result()


def test_cancel(host: Host) -> None:
    started = threading.Event()

    async def main() -> None:
        started.set()
        await asyncio.sleep(3600)

    guest = host.start(main())

    def cancel_when_started() -> None:
        started.wait()
        guest.cancel()

    # Cancel from another thread once the guest waits on its hour-long timer.
    canceller = threading.Thread(target=cancel_when_started)
    canceller.start()
    host.run(until=lambda: bool(host.outcomes))
    canceller.join()
    assert host.outcomes[0].cancelled()
    with pytest.raises(asyncio.CancelledError):
        host.outcomes[0].result()


def test_io_from_the_guest(host: Host) -> None:
    a, b = socket.socketpair()

    async def main() -> bytes:
        reader, writer = await asyncio.open_connection(sock=a)
        writer.write(b"ping\n")
        await writer.drain()
        # The peer answers from another thread: the helper sees the socket readable through
        # the loop's fd and posts a step.
        threading.Thread(target=lambda: b.sendall(b.recv(5).upper())).start()
        line = await reader.readline()
        writer.close()
        await writer.wait_closed()
        return line

    try:
        assert host.run_to_completion(main()).result() == b"PING\n"
    finally:
        b.close()


def test_work_scheduled_by_the_host_between_steps(host: Host) -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[str] = loop.create_future()
        # The host (not a callback of the loop) resolves the future, between two steps.
        host.todo.put(lambda: fut.set_result("from the host"))
        return await fut

    assert host.run_to_completion(main()).result() == "from the host"


def test_threadsafe_call_wakes_the_guest(host: Host) -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[str] = loop.create_future()
        threading.Thread(
            target=loop.call_soon_threadsafe, args=(fut.set_result, "from a thread")
        ).start()
        return await fut

    assert host.run_to_completion(main()).result() == "from a thread"


def test_shutdown_like_asyncio_run(host: Host) -> None:
    events: list[str] = []

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            events.append("background task cancelled")

    async def agen():  # type: ignore[no-untyped-def]
        try:
            yield 1
            yield 2
        finally:
            events.append("async generator closed")

    kept: list[Any] = []

    async def main() -> str:
        loop = asyncio.get_running_loop()
        loop.create_task(forever())
        gen = agen()
        await gen.__anext__()
        kept.append(gen)
        return await loop.run_in_executor(None, lambda: "executor")

    outcome = host.run_to_completion(main())
    assert outcome.result() == "executor"
    assert sorted(events) == ["async generator closed", "background task cancelled"]
    loop = outcome.get_loop()
    assert loop.is_closed()
    assert guest_threads() == []


def test_context_is_kept(host: Host) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def main() -> str:
        var.set("set in the guest")
        await asyncio.sleep(0)
        return var.get()

    assert host.run_to_completion(main()).result() == "set in the guest"
    assert var.get() == "unset"


def test_virtual_clock_guest(host: Host) -> None:
    from steploop.testing import new_virtual_loop

    async def main() -> float:
        await asyncio.sleep(3600)
        return asyncio.get_running_loop().time()

    outcome = host.run_to_completion(main(), loop_factory=new_virtual_loop)
    assert outcome.result() == 3600.0


def test_debug_flag_and_repr(host: Host) -> None:
    async def main() -> bool:
        return asyncio.get_running_loop().get_debug()

    guest = host.start(main(), debug=True)
    assert repr(guest).startswith("<GuestRun running task=<Task pending")
    host.run(until=lambda: bool(host.outcomes))
    assert host.outcomes[0].result() is True
    assert repr(guest).startswith("<GuestRun finished task=<Task finished")


def test_keyboard_interrupt_reaches_the_host(host: Host) -> None:
    async def main() -> None:
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    host.start(main())
    with pytest.raises(KeyboardInterrupt):
        host.run(until=lambda: bool(host.outcomes))
    # The run goes on: the host keeps running steps until the guest has shut down.
    host.run(until=lambda: bool(host.outcomes))
    assert isinstance(host.outcomes[0].exception(), KeyboardInterrupt)
    assert guest_threads() == []
