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
    request: pytest.FixtureRequest,
    loop_kind: str,
    loop: asyncio.AbstractEventLoop,
    loop_errors: list[dict[str, Any]],
) -> None:
    xfail_on_steploop(
        request,
        loop_kind,
        "a Handle cancelled by its own callback still formats its callback in the "
        "'Exception in callback ...' message (asyncio: 'None()')",
    )
    # Fuzzer program: [([('soon', [('cancel', 0), ('raise', 'ValueError')])], ('step',))]
    handles: list[asyncio.Handle] = []

    def cb() -> None:
        handles[0].cancel()
        raise ValueError("boom")

    handles.append(loop.call_soon(cb))
    run_briefly(loop)
    assert [c["message"] for c in loop_errors] == ["Exception in callback None()"]
    assert isinstance(loop_errors[0]["exception"], ValueError)
