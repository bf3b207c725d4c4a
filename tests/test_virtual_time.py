"""steploop.testing: loops with a virtual clock (advance, autojump) and the plugin's fixtures.

The `virtual_loop` and `steploop_loop` fixtures come from steploop's own pytest plugin
(the `pytest11` entry point), which these tests therefore also exercise.
"""

from __future__ import annotations

import asyncio
import math
import socket
import threading

import pytest
import steploop
from steploop.testing import VirtualLoop, new_virtual_loop

pytestmark = pytest.mark.steploop_only


def test_sleep_an_hour_returns_at_once(virtual_loop: VirtualLoop) -> None:
    async def main() -> str:
        await asyncio.sleep(3600)
        return "later"

    assert virtual_loop.run_until_complete(main()) == "later"
    assert virtual_loop.time() == 3600.0


def test_timeout_fires_in_virtual_time(virtual_loop: VirtualLoop) -> None:
    async def main() -> None:
        async with asyncio.timeout(3600):
            await asyncio.sleep(7200)

    with pytest.raises(TimeoutError):
        virtual_loop.run_until_complete(main())
    assert virtual_loop.time() == 3600.0


def test_wait_for_in_virtual_time(virtual_loop: VirtualLoop) -> None:
    async def main() -> tuple[str, float]:
        fast = await asyncio.wait_for(asyncio.sleep(10, "fast"), timeout=3600)
        at = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.sleep(7200), timeout=3600)
        return fast, at

    assert virtual_loop.run_until_complete(main()) == ("fast", 10.0)
    assert virtual_loop.time() == 3610.0


def test_timers_fire_in_order_at_their_virtual_time(virtual_loop: VirtualLoop) -> None:
    fired: list[tuple[str, float]] = []

    def record(name: str) -> None:
        fired.append((name, virtual_loop.time()))

    virtual_loop.call_later(30, record, "b")
    virtual_loop.call_at(10, record, "a")
    virtual_loop.call_later(86400, record, "day")
    virtual_loop.call_soon(record, "now")

    async def until_the_last() -> None:
        await asyncio.sleep(86400)

    virtual_loop.run_until_complete(until_the_last())
    assert fired == [("now", 0.0), ("a", 10.0), ("b", 30.0), ("day", 86400.0)]


def test_start_time() -> None:
    loop = new_virtual_loop(start=100.0)
    try:
        assert loop.time() == 100.0
        loop.run_until_complete(asyncio.sleep(50))
        assert loop.time() == 150.0
    finally:
        loop.close()


def test_advance_without_autojump_lets_a_timer_fire() -> None:
    loop = new_virtual_loop(autojump=False)
    try:
        assert not loop.autojump
        fired: list[float] = []
        loop.call_later(10, lambda: fired.append(loop.time()))
        loop.run_until_idle()
        assert fired == [] and loop.time() == 0.0  # nothing due: the clock stays
        assert loop.time_until_next() == 10.0
        loop.advance(4)
        loop.run_until_idle()
        assert fired == [] and loop.time_until_next() == 6.0
        loop.advance(6)
        assert loop.time_until_next() == 0.0
        loop.run_until_idle()
        assert fired == [10.0]
    finally:
        loop.close()


def test_advance_from_another_thread_wakes_a_waiting_loop() -> None:
    loop = new_virtual_loop(autojump=False)
    try:
        waiting = threading.Event()

        async def main() -> float:
            sleeper = asyncio.ensure_future(asyncio.sleep(5))
            await asyncio.sleep(0)  # the sleeper's timer is scheduled (deadline 5.0) ...
            waiting.set()  # ... before the other thread may advance the clock
            await sleeper
            return asyncio.get_running_loop().time()

        def advancer() -> None:
            waiting.wait()
            loop.advance(5)

        thread = threading.Thread(target=advancer)
        thread.start()
        assert loop.run_until_complete(main()) == 5.0
        thread.join()
    finally:
        loop.close()


def test_advance_with_autojump_adds_to_the_jumps(virtual_loop: VirtualLoop) -> None:
    virtual_loop.advance(2.5)
    assert virtual_loop.time() == 2.5
    virtual_loop.run_until_complete(asyncio.sleep(1))
    assert virtual_loop.time() == 3.5


@pytest.mark.parametrize("seconds", [-1.0, math.nan])
def test_advance_bad_value(virtual_loop: VirtualLoop, seconds: float) -> None:
    with pytest.raises(ValueError):
        virtual_loop.advance(seconds)
    assert virtual_loop.time() == 0.0


def test_advance_on_a_real_loop_raises(steploop_loop: steploop.Loop) -> None:
    with pytest.raises(RuntimeError, match="virtual clock"):
        steploop_loop.advance(1)


def test_real_io_still_works_on_a_virtual_loop(virtual_loop: VirtualLoop) -> None:
    a, b = socket.socketpair()

    async def main() -> bytes:
        reader, writer = await asyncio.open_connection(sock=a)
        # Sent from another thread after the loop waits: a waiting read does not make
        # the clock jump (only timers would), and the data wakes the loop.
        virtual_loop.call_soon(threading.Thread(target=b.sendall, args=(b"ping\n",)).start)
        line = await reader.readline()
        writer.close()
        await writer.wait_closed()
        return line

    try:
        assert virtual_loop.run_until_complete(main()) == b"ping\n"
        assert virtual_loop.time() == 0.0
    finally:
        b.close()


def test_virtual_loop_is_a_steploop_loop(virtual_loop: VirtualLoop) -> None:
    assert isinstance(virtual_loop, steploop.Loop)
    assert virtual_loop._is_virtual()
    assert repr(virtual_loop).startswith("<VirtualLoop time=0.0 autojump=True running=False")
    report = virtual_loop.run_once(0)
    assert report.callbacks == 0


def test_reentrant_virtual_loop() -> None:
    loop = new_virtual_loop(reentrant=True)
    try:

        async def outer() -> float:
            loop.run_until_complete(asyncio.sleep(60))
            return loop.time()

        assert loop.run_until_complete(outer()) == 60.0
    finally:
        loop.close()


def test_steploop_loop_fixture(steploop_loop: steploop.Loop) -> None:
    assert type(steploop_loop) is steploop.Loop
    assert not steploop_loop._is_virtual()
    steploop_loop.call_soon(lambda: None)
    assert steploop_loop.run_once(0).callbacks == 1


def test_fixture_closes_like_asyncio_run() -> None:
    """What the fixtures do at teardown: cancel leftover tasks, finalize async generators."""
    from steploop.pytest_plugin import _close

    loop = new_virtual_loop()
    events: list[str] = []

    async def forever() -> None:
        try:
            await asyncio.sleep(math.inf)
        finally:
            events.append("task cancelled")

    async def agen():  # type: ignore[no-untyped-def]
        try:
            yield 1
            yield 2
        finally:
            events.append("agen closed")

    async def main() -> None:
        loop.create_task(forever())
        gen = agen()
        await gen.__anext__()
        loop._kept = gen  # type: ignore[attr-defined]  # keep it alive, unfinished

    loop.run_until_complete(main())
    _close(loop)
    assert loop.is_closed()
    assert sorted(events) == ["agen closed", "task cancelled"]


def test_watchdog_measures_real_time_on_a_virtual_loop(virtual_loop: VirtualLoop) -> None:
    """A callback blocks in real time, whatever the loop's clock says."""
    import logging
    import time

    seen = threading.Event()
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if message.startswith("Blocking: "):
                messages.append(message)
                seen.set()

    def busy() -> None:
        deadline = time.monotonic() + 30.0  # a broken watchdog fails, does not hang
        while not seen.is_set() and time.monotonic() < deadline:
            pass

    handler = Collect()
    logging.getLogger("asyncio").addHandler(handler)
    try:
        virtual_loop.set_blocking_watchdog(0.05)
        virtual_loop.call_soon(busy)
        virtual_loop.run_once(0)
    finally:
        logging.getLogger("asyncio").removeHandler(handler)
    assert len(messages) == 2, messages
    assert "has been running for" in messages[0] and " took " in messages[1]
