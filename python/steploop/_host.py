"""What a host event loop needs to know to drive a steploop loop (guest mode, Tk)."""

from __future__ import annotations

from ._loop import Loop

__all__ = ["host_delay"]


def host_delay(loop: Loop) -> float | None:
    """Real seconds a host may wait before the loop's next step has work, if nothing comes in
    through ``loop.fileno()`` meanwhile; None: wait for the fd only.

    ``loop.time_until_next()``, except on a virtual clock, whose seconds are not the host's:
    with autojump, a step jumps to the next timer at once (0.0); without, only ``advance()``
    brings timers due, and it wakes the fd (None).
    """
    delay = loop.time_until_next()
    if delay is not None and delay > 0.0 and loop._is_virtual():
        return 0.0 if loop._autojump else None
    return delay
