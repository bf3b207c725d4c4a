"""Memory, measured with tracemalloc: what a loop held is given back.

A loop with 10^5 pending callbacks and timers whose arguments form reference cycles with the
loop is closed (or only dropped), then collected; the memory traced while filling it must be
returned. The bound is relative to what filling allocated, so it does not depend on the machine.
"""

from __future__ import annotations

import asyncio
import gc
import os
import platform
import subprocess
import sys
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


_FAULTS_PER_READ = """
import resource, socket, sys
if sys.argv[1] == "steploop":
    import steploop._steploop  # the extension's import makes the adjustment
a, b = socket.socketpair()
a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
msg = b"x" * 102400
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):
    a.sendall(msg)
    got = 0
    while got < len(msg):
        got += len(b.recv(256 * 1024))  # what asyncio's socket transport does per read
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 200)
"""


def _faults_per_read(kind: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _FAULTS_PER_READ, kind],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")},
    )
    return float(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc thresholds")
def test_transport_sized_reads_do_not_fault_after_import() -> None:
    """asyncio's transports read with recv(256 KiB); in a fresh process glibc serves that with
    an mmap, page faults and a munmap per read, until the threshold adapts. Importing
    steploop's extension raises the threshold (malloc_tuning.rs): no faults per read."""
    plain = _faults_per_read("plain")
    if plain < 5:
        pytest.skip(f"this glibc already serves the reads from the heap ({plain} faults/read)")
    assert _faults_per_read("steploop") < 1.0, plain
