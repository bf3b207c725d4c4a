"""Differential fuzzing: random programs of loop operations run on asyncio and on steploop
must leave the same trace (see looprog.py for the program model and what the trace holds).

Normal run: 300 programs. Long run::

    STEPLOOP_FUZZ_EXAMPLES=100000 .venv/bin/python -m pytest tests/fuzz -q

`test_random_programs` draws the same kind of programs with `random` (much faster to
generate than hypothesis; no shrinking): STEPLOOP_FUZZ_RANDOM programs (1000 in the normal
run) from seed STEPLOOP_FUZZ_SEED (default 0). Long run::

    STEPLOOP_FUZZ_RANDOM=1000000 STEPLOOP_FUZZ_SEED=1 .venv/bin/python -m pytest \
        tests/fuzz -q -k random

A failing program is printed by hypothesis (shrunk); turn it into a named test in
test_regressions.py.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from loop_helpers import new_loop_of_kind
from looprog import Entry, diff, programs, random_program, run_program

# In asyncio debug mode (the test command's second pass) every handle records a traceback,
# which makes programs ~15x slower: the default counts shrink there.
_DEBUG = bool(os.environ.get("PYTHONASYNCIODEBUG")) or sys.flags.dev_mode
EXAMPLES = int(os.environ.get("STEPLOOP_FUZZ_EXAMPLES", "100" if _DEBUG else "300"))
RANDOM_PROGRAMS = int(os.environ.get("STEPLOOP_FUZZ_RANDOM", "100" if _DEBUG else "1000"))
SEED = int(os.environ.get("STEPLOOP_FUZZ_SEED", "0"))


def run_both(program: list[Entry]) -> tuple[list[Any], list[Any]]:
    """The traces of `program` on asyncio and on steploop."""
    ref = run_program(asyncio.new_event_loop(), program)
    got = run_program(new_loop_of_kind("steploop"), program)
    return ref, got


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


def test_random_programs() -> None:
    """Programs i = 0..N-1 are drawn from random.Random(f"{SEED}:{i}"): each one can be
    re-created from its number alone."""
    for i in range(RANDOM_PROGRAMS):
        program = random_program(random.Random(f"{SEED}:{i}"))
        ref, got = run_both(program)
        if ref != got:
            pytest.fail(
                f"program {SEED}:{i} diverges: {diff(ref, got)}\nprogram = {program!r}",
                pytrace=False,
            )
