"""Testing with steploop: a loop with a virtual clock.

A virtual loop's ``time()`` moves only when the test says so, with ``advance(seconds)``,
or — with autojump, the default — when an iteration finds nothing ready to run and no I/O:
the clock then jumps straight to the next timer. Code that sleeps, times out or retries
for an hour runs in microseconds, and deterministically::

    import asyncio
    from steploop.testing import new_virtual_loop

    loop = new_virtual_loop()

    async def slow():
        await asyncio.sleep(3600)
        return "an hour later"

    assert loop.run_until_complete(slow()) == "an hour later"   # returns at once
    assert loop.time() == 3600.0
    loop.close()

``asyncio.timeout``, ``asyncio.wait_for``, ``call_later``/``call_at`` and everything built on
``loop.time()`` follow the virtual clock. Real I/O still works: a socket that becomes
readable wakes the loop as usual, and a loop waiting on I/O does not jump (autojump only
happens when nothing is ready and no I/O event came in).

One caution: autojump cannot see work done in other threads. While a thread of
``run_in_executor`` is busy, an idle loop jumps to its next timer, so a ``wait_for`` around
executor work times out at once. Use ``autojump=False`` and ``advance()`` there.

The pytest plugin (`steploop.pytest_plugin`, installed with steploop) provides the fixtures
``virtual_loop`` and ``steploop_loop`` and the option ``--steploop``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._loop import Loop

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["VirtualLoop", "new_virtual_loop"]


class VirtualLoop(Loop):
    """A steploop loop whose clock is virtual (see the module's documentation).

    ``VirtualLoop(virtual_time=0.0, autojump=True)``: ``time()`` starts at ``virtual_time``;
    with ``autojump`` the clock jumps to the next timer whenever an iteration would otherwise
    wait for it. Without autojump, only ``advance()`` moves it, and a loop with nothing to do
    waits for I/O or for another thread's ``advance()``/``call_soon_threadsafe()``.
    """

    def __new__(
        cls, *, virtual_time: float = 0.0, autojump: bool = True, reentrant: bool = False
    ) -> Self:
        # The clock is chosen by the native constructor: pass the defaults on explicitly.
        return super().__new__(cls, virtual_time=virtual_time, autojump=autojump)

    def __init__(
        self, *, virtual_time: float = 0.0, autojump: bool = True, reentrant: bool = False
    ) -> None:
        super().__init__(reentrant=reentrant)  # the clock itself is set up by __new__

    @property
    def autojump(self) -> bool:
        """Whether the clock jumps to the next timer when the loop would otherwise wait."""
        return self._autojump

    def advance(self, seconds: float) -> None:
        """Move the virtual clock forward by ``seconds`` (>= 0; ValueError otherwise).

        Timers that come due run at the loop's next iteration; a loop waiting in another
        thread is woken up::

            loop = new_virtual_loop(autojump=False)
            fired = []
            loop.call_later(10, fired.append, "ten")
            loop.run_until_idle()        # nothing due: the clock does not move
            assert fired == []
            loop.advance(10)
            loop.run_until_idle()
            assert fired == ["ten"] and loop.time() == 10.0
        """
        super().advance(seconds)

    def __repr__(self) -> str:
        return (
            f"<{self.__class__.__name__} time={self.time()!r} autojump={self._autojump} "
            f"running={self.is_running()} closed={self.is_closed()} debug={self.get_debug()}>"
        )


def new_virtual_loop(
    *, start: float = 0.0, autojump: bool = True, reentrant: bool = False
) -> VirtualLoop:
    """Return a new `VirtualLoop` whose clock reads ``start``.

    ::

        loop = new_virtual_loop(start=100.0)
        assert loop.time() == 100.0
        loop.run_until_complete(asyncio.sleep(50))   # instant: autojump
        assert loop.time() == 150.0
        loop.close()

    ``autojump=False`` leaves the clock to ``advance()``; ``reentrant=True`` allows nested
    runs as ``steploop.new_event_loop(reentrant=True)`` does.
    """
    return VirtualLoop(virtual_time=start, autojump=autojump, reentrant=reentrant)
