"""Divergences found by the differential fuzzer (test_differential.py), one named test each.

Each runs on asyncio and on steploop (the `loop` fixture); a test still failing on steploop
is marked xfail(strict=True) for the steploop param only and described in
docs/NATIVE_REQUESTS.md. The fuzzer masks these known divergences (looprog.MASK_KNOWN) so it
keeps finding new ones.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from loop_helpers import run_briefly


def xfail_on_steploop(request: pytest.FixtureRequest, loop_kind: str, reason: str) -> None:
    """Mark the running test xfail(strict) if it runs on steploop."""
    if loop_kind == "steploop":
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"steploop bug: {reason}"))


# ---------------------------------------------------------------- found by the fuzzer


def test_handle_cancelled_by_its_own_callback_message(
    loop: asyncio.AbstractEventLoop, loop_errors: list[dict[str, Any]]
) -> None:
    """asyncio's Handle.cancel() drops the callback at once, even while it runs: the error
    is reported as 'Exception in callback None()'. (steploop: fixed in b2239c5.)"""
    # Fuzzer program: [([('soon', [('cancel', 0), ('raise', 'ValueError')])], ('step',))]
    handles: list[asyncio.Handle] = []

    def cb() -> None:
        handles[0].cancel()
        raise ValueError("boom")

    handles.append(loop.call_soon(cb))
    run_briefly(loop)
    assert [c["message"] for c in loop_errors] == ["Exception in callback None()"]
    assert isinstance(loop_errors[0]["exception"], ValueError)


def test_equal_deadlines_after_heap_compaction(loop_kind: str) -> None:
    """Hundreds of far timers, most cancelled (more than 100 and more than half: the heap is
    rebuilt), mixed with due timers of four equal deadlines: the due timers come out in the
    order asyncio's heapq gives, before and after the rebuild. Shape of the program behind
    the long run's flaky report (which was the harness: far timers then used call_later)."""
    from loop_helpers import new_loop_of_kind
    from looprog import run_program

    program: list[Any] = [
        ([("bulk", 19, 134, 2, 3)], ("forever", 4)),
        (
            [
                ("bulk", 0, 40, 1, 2),
                ("bulk", 23, 133, 2, 1),
                ("bulk", 36, 88, 4, 4),
                ("bulk", 16, 112, 3, 1),
            ],
            ("step",),
        ),
        ([("bulk", 40, 250, 4, 2)], ("step",)),
        ([], ("step",)),
    ]
    ref = run_program(asyncio.new_event_loop(), program)
    got = run_program(new_loop_of_kind(loop_kind), program)
    assert [t for t in ref if t[0] == "cb"], "the program ran no timer"
    assert got == ref
