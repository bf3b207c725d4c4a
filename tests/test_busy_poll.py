"""steploop-only: busy polling before a blocking wait (`loop.set_busy_poll`).

Busy polling changes how the loop waits, never what an iteration sees, so the behaviour tests
of every other module already run with it on (the default). These tests check the setting,
its validation and environment variable, the statistics, and that a loop spinning in its
waits still sees timers, I/O and wake-ups exactly when a blocking one does. No test depends
on the machine's speed: the waits are timers of a millisecond or more, far above the windows
they teach, and the limit is a whole second.
"""

from __future__ import annotations

import asyncio
import math
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import steploop

pytestmark = pytest.mark.steploop_only


@pytest.fixture
def loop() -> Iterator[steploop.Loop]:
    loop = steploop.new_event_loop()
    yield loop
    loop.close()


def sleeps(loop: steploop.Loop, count: int, seconds: float) -> None:
    """Run ``count`` waits of ``seconds`` each (one blocking wait per sleep)."""

    async def main() -> None:
        for _ in range(count):
            await asyncio.sleep(seconds)

    loop.run_until_complete(main())


def train(loop: steploop.Loop) -> None:
    """Open the window: with a one-second limit, every 1 ms wait is a short one."""
    loop.set_busy_poll(1.0)
    sleeps(loop, 12, 0.001)


def test_default_and_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STEPLOOP_BUSY_POLL_US", raising=False)
    loop = steploop.new_event_loop()
    # 100 µs, or 0 where the process may use one CPU only (engine: BusyPoll::default_limit).
    default = loop.get_busy_poll()
    assert default == 0.0 or default == pytest.approx(100e-6)
    if len(os.sched_getaffinity(0)) == 1:
        assert default == 0.0
    loop.set_busy_poll(0)
    assert loop.get_busy_poll() == 0.0
    loop.set_busy_poll(50e-6)
    assert loop.get_busy_poll() == pytest.approx(50e-6)
    loop.set_busy_poll(3600)  # at most a second
    assert loop.get_busy_poll() == 1.0
    loop.set_busy_poll(1e300)  # no overflow on the way
    assert loop.get_busy_poll() == 1.0
    loop.close()


@pytest.mark.parametrize("bad", [-1e-6, math.nan, math.inf])
def test_bad_limits(loop: steploop.Loop, bad: float) -> None:
    with pytest.raises(ValueError, match="limit must be a non-negative number of seconds"):
        loop.set_busy_poll(bad)
    fresh = steploop.new_event_loop()
    assert loop.get_busy_poll() == fresh.get_busy_poll()  # unchanged: still the default
    fresh.close()


def test_limit_must_be_a_number(loop: steploop.Loop) -> None:
    with pytest.raises(TypeError):
        loop.set_busy_poll("fast")  # type: ignore[arg-type]


def test_environment_sets_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, limit in [("250", 250e-6), ("0", 0.0), ("12.5", 12.5e-6)]:
        monkeypatch.setenv("STEPLOOP_BUSY_POLL_US", value)
        loop = steploop.new_event_loop()
        assert loop.get_busy_poll() == pytest.approx(limit)
        loop.close()


@pytest.mark.parametrize("value", ["fast", "-5", "inf", "nan", ""])
def test_bad_environment_value(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("STEPLOOP_BUSY_POLL_US", value)
    with pytest.raises(ValueError, match="STEPLOOP_BUSY_POLL_US must be a non-negative number"):
        steploop.new_event_loop()


def test_short_waits_open_the_window(loop: steploop.Loop) -> None:
    train(loop)
    stats = loop.stats()
    # The first wait blocks at once (the window starts closed); the later ones spin, and
    # once the window is past 1 ms their spinning covers the whole wait.
    assert stats["busy_polls"] >= 10
    assert 1 <= stats["busy_poll_hits"] <= stats["busy_polls"]
    loop.reset_stats()
    assert loop.stats()["busy_polls"] == loop.stats()["busy_poll_hits"] == 0


def test_long_waits_never_spin(loop: steploop.Loop) -> None:
    loop.set_busy_poll(100e-6)  # the default on more than one CPU
    sleeps(loop, 3, 0.005)
    assert loop.stats()["busy_polls"] == 0


def test_off_never_spins(loop: steploop.Loop) -> None:
    loop.set_busy_poll(0)
    sleeps(loop, 5, 0.001)
    assert loop.stats()["busy_polls"] == 0


def test_a_spinning_wait_still_waits_for_its_timer(loop: steploop.Loop) -> None:
    train(loop)
    for delay in (0.001, 0.003, 0.005):
        fired: list[float] = []
        start = loop.time()
        loop.call_later(delay, fired.append, delay)
        # One iteration: it waits until the timer is due, spinning or not.
        report = loop.run_once()
        assert (report.timers, report.callbacks) == (1, 1)
        assert fired == [delay]
        assert loop.time() - start >= delay


@pytest.mark.parametrize("limit", [0.0, 100e-6, 1.0])
def test_echo_with_a_thread_peer(loop: steploop.Loop, limit: float) -> None:
    """The same exchange, byte for byte, whether the waits block, spin a little or spin long."""
    loop.set_busy_poll(limit)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)

    def peer() -> None:
        with theirs:
            while data := theirs.recv(65536):
                theirs.sendall(data.upper())

    thread = threading.Thread(target=peer)
    thread.start()

    async def exchange() -> list[bytes]:
        replies = []
        for i in range(200):
            msg = b"message %d;" % i
            await loop.sock_sendall(ours, msg)
            reply = b""
            while len(reply) < len(msg):
                reply += await loop.sock_recv(ours, 65536)
            replies.append(reply)
        return replies

    try:
        replies = loop.run_until_complete(exchange())
    finally:
        ours.close()
        thread.join()
    assert replies == [b"MESSAGE %d;" % i for i in range(200)]


def test_call_soon_threadsafe_ends_a_spinning_wait(loop: steploop.Loop) -> None:
    train(loop)
    requests: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    seen: list[int] = []

    def sender() -> None:
        while (i := requests.get()) is not None:
            loop.call_soon_threadsafe(seen.append, i)

    thread = threading.Thread(target=sender)
    thread.start()
    try:
        for i in range(20):
            requests.put(i)
            # Nothing is scheduled: only the other thread's callback can end this wait.
            report = loop.run_once()
            assert report.callbacks == 1
            assert seen == list(range(i + 1))
    finally:
        requests.put(None)
        thread.join()


def test_ctrl_c_while_spinning(loop: steploop.Loop) -> None:
    """SIGINT that arrives while a wait spins is seen before the thread sleeps.

    A signal interrupts a blocking poll, not a spinning one: without the check between the
    two, this wait would sleep until its 2 s timer with a KeyboardInterrupt pending.
    """
    loop.set_busy_poll(1.0)
    sleeps(loop, 11, 0.005)  # opens the window to 5.12 ms
    main = threading.get_ident()
    entering = threading.Event()

    def interrupt() -> None:
        entering.wait()
        time.sleep(0.001)  # into the spin (the wait spins ~5 ms before it blocks)
        signal.pthread_kill(main, signal.SIGINT)

    thread = threading.Thread(target=interrupt)
    thread.start()
    fired: list[bool] = []
    timer = loop.call_later(2.0, fired.append, True)
    try:
        entering.set()
        with pytest.raises(KeyboardInterrupt):
            loop.run_once()
    finally:
        thread.join()
        timer.cancel()
    assert fired == []
    # The interrupted wait was given up cleanly: the loop waits, spins and wakes as before.
    waker = threading.Timer(0.01, loop.call_soon_threadsafe, (fired.append, False))
    waker.start()
    report = loop.run_once()
    waker.join()
    assert (report.callbacks, fired) == (1, [False])
    sleeps(loop, 3, 0.005)
    assert loop.stats()["busy_polls"] > 0
