"""Memory, measured with tracemalloc: what a loop held is given back.

A loop with 10^5 pending callbacks and timers whose arguments form reference cycles with the
loop is closed (or only dropped), then collected; the memory traced while filling it must be
returned. The bound is relative to what filling allocated, so it does not depend on the machine.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from typing import Any

import pytest
from loop_helpers import new_loop_of_kind

N = 100_000


class Node:
    """Callback argument that refers to the loop and to itself."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.me = self
        self.payload = [0] * 4


def noop(*args: Any) -> None:
    pass


def _fill_and_drop(loop_kind: str, close: bool) -> None:
    loop = new_loop_of_kind(loop_kind)
    loop.set_debug(False)
    for i in range(N):
        node = Node(loop)
        if i % 2:
            loop.call_soon(noop, node)
        else:
            loop.call_later(1000.0, noop, node)
    if close:
        loop.close()
    # Not closed: only the GC can break the cycles (BaseEventLoop.__del__ warns then).
    del loop


@pytest.mark.parametrize("close", [True, False], ids=["closed", "dropped"])
@pytest.mark.filterwarnings("ignore:unclosed event loop:ResourceWarning")
def test_pending_cycles_memory_is_returned(loop_kind: str, close: bool) -> None:
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        _fill_and_drop(loop_kind, close)
        _, peak = tracemalloc.get_traced_memory()
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    allocated = peak - before
    assert allocated > N * 100  # the fill really allocated (Nodes, handles, lists)
    # Everything comes back, give or take small caches (free lists, interned strings).
    assert after - before < allocated * 0.02, (before, peak, after)
