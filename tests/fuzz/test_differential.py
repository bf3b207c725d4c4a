"""Differential fuzzing: random programs of loop operations run on asyncio and on steploop
must leave the same trace (see looprog.py for the program model and what the trace holds).

Normal run: 300 programs. Long run::

    STEPLOOP_FUZZ_EXAMPLES=100000 .venv/bin/python -m pytest tests/fuzz -q

A failing program is printed by hypothesis (shrunk); turn it into a named test in
test_regressions.py.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from loop_helpers import new_loop_of_kind
from looprog import Entry, diff, programs, run_program

EXAMPLES = int(os.environ.get("STEPLOOP_FUZZ_EXAMPLES", "300"))


def run_both(program: list[Entry]) -> tuple[list[Any], list[Any]]:
    """The traces of `program` on asyncio and on steploop."""
    ref = run_program(asyncio.new_event_loop(), program)
    got = run_program(new_loop_of_kind("steploop"), program)
    return ref, got


# A task created just before its loop is closed never starts (on both loops).
@pytest.mark.filterwarnings("ignore:coroutine 'Run.coro' was never awaited:RuntimeWarning")
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(programs())
def test_same_trace_as_asyncio(program: list[Entry]) -> None:
    ref, got = run_both(program)
    assert ref == got, diff(ref, got)
