#!/usr/bin/env python
"""Long leak soak: 10^4 loops created and closed, 10^7 callbacks, 10^6 timers created and
cancelled, 10^5 TCP connections opened and closed; RSS and open fds at the start and end of
each phase (after a warm-up of 1% of the phase, so caches and allocator arenas are counted
at the start). The short version runs in the test command (tests/soak/test_leaks.py).

    .venv/bin/python scripts/soak.py                      # steploop, full size
    .venv/bin/python scripts/soak.py --loop asyncio       # the reference
    .venv/bin/python scripts/soak.py --scale 0.01         # a quick look

Exit status 1 if a phase ends with more open fds than it started with, or RSS grew by more
than --max-rss-growth KiB (default 8 MiB; RSS is noisy, fds are exact).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "soak"))
from leakcheck import callbacks, connections, loops, open_fds, rss_kib, timers


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "asyncio":
        return asyncio.new_event_loop()
    import steploop

    loop: asyncio.AbstractEventLoop = steploop.new_event_loop()
    return loop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loop", choices=["steploop", "asyncio"], default="steploop")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every count")
    parser.add_argument("--max-rss-growth", type=int, default=8192, help="KiB per phase")
    parser.add_argument("--only", nargs="*", help="phases to run (default: all)")
    args = parser.parse_args()
    kind = args.loop

    def sized(n: float) -> int:
        return max(1, int(n * args.scale))

    loop = new_loop(kind)
    phases = {
        "loops": (sized(1e4), lambda n: loops(lambda: new_loop(kind), n)),
        "callbacks": (sized(1e7), lambda n: callbacks(loop, n)),
        "timers": (sized(1e6), lambda n: timers(loop, n)),
        "connections": (sized(1e5), lambda n: connections(loop, n)),
    }
    print(f"soak on {kind} (python {sys.version.split()[0]})")
    print(
        f"{'phase':<12} {'count':>10} {'seconds':>8} {'rss start':>10} {'rss end':>10} "
        f"{'fds start':>9} {'fds end':>8}"
    )
    failed = False
    for name, (n, run) in phases.items():
        if args.only and name not in args.only:
            continue
        run(max(1, n // 100))  # warm-up
        gc.collect()
        rss0, fds0 = rss_kib(), open_fds()
        t0 = time.perf_counter()
        run(n)
        elapsed = time.perf_counter() - t0
        gc.collect()
        rss1, fds1 = rss_kib(), open_fds()
        bad = fds1 > fds0 or rss1 - rss0 > args.max_rss_growth
        failed |= bad
        print(
            f"{name:<12} {n:>10} {elapsed:>8.1f} {rss0:>7} KiB {rss1:>6} KiB "
            f"{fds0:>9} {fds1:>8}{'  <-- grew' if bad else ''}",
            flush=True,
        )
    loop.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
