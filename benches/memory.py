"""Peak memory (RSS) of asyncio, uvloop, rloop and steploop holding many timers or connections.

Usage::

    python benches/memory.py [--quick] [--loops asyncio,uvloop,rloop,steploop] [--samples N]
                             [--timers N] [--connections N] [--out OUT] [--timeout S]
    python benches/memory.py --child LOOP WORKLOAD SIZE     # one sample, prints one JSON object

Workloads (one fresh process per sample of every (loop, workload) pair):

* ``timers_1e6``: inside the running loop, ``loop.call_later(3600 + i * 1e-6, cb)`` 10^6 times
  (all pending, none fires); measured after one loop iteration; then all are cancelled and the
  loop closed. The handles are kept in a list, as ``asyncio.sleep`` and timeouts keep theirs;
  the list is allocated before the baseline, so its 8 bytes a slot are not counted.
* ``connections_1e4``: a Protocol server (``loop.create_server`` on 127.0.0.1, port 0) and
  10^4 clients connected to it with ``loop.create_connection`` on the same loop, so the loop
  holds 2 x 10^4 transports; measured once the server's ``connection_made`` has counted every
  connection (an ``asyncio.Event``, no timing); then everything is closed. The soft
  ``RLIMIT_NOFILE`` is raised to the hard limit; when the hard limit has no room for 2 x 10^4
  fds, as many connections as fit are made, the same number on every loop, and the report says
  how many.

Each sample reads ``getrusage(RUSAGE_SELF).ru_maxrss``, the peak RSS of the process so far,
right after ``new_event_loop()`` (the baseline) and at the measuring point (the peak); the
figure that matters is the delta, peak minus baseline: what the workload cost on top of the
interpreter, the imports and the empty loop. Both ends come from the same counter on purpose:
Linux keeps RSS in per-CPU counters, and ``VmRSS`` (summed) can read a few hundred KiB above
``ru_maxrss`` (not summed) at the same moment. ``VmRSS`` at both points is kept in the JSON
for reference. The table gives the median of the samples and each loop's delta relative to asyncio's
(lower is better; 1.00x is asyncio).

Full runs save ``benches/results/memory.json`` unless ``--out`` says otherwise (``--quick``,
sizes 10^3 timers and 50 connections, saves nothing without ``--out``: its figures mean
nothing); ``python benches/render.py`` adds the "Memory" section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import statistics
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import workloads as wl
from run import fmt_ratio, machine_meta, probe, run_child

DEFAULT_OUT = os.path.join(HERE, "results", "memory.json")
MIB = 1024 * 1024
#: fds kept free for everything but the connections (stdio, the loop's selector and wake-up
#: pipe, the listening socket, what uvloop and rloop open for themselves)
FD_RESERVE = 64
#: connections opened at a time, below the listening socket's backlog
CONNECT_BATCH = 256
BACKLOG = 1024

WORKLOADS: dict[str, dict[str, Any]] = {
    "timers_1e6": {
        "full": 10**6,
        "quick": 10**3,
        "what": "pending timers",
        "description": (
            "`loop.call_later(3600 + i * 1e-6, cb)` from inside the running loop, none fired; "
            "handles kept in a list allocated before the baseline"
        ),
    },
    "connections_1e4": {
        "full": 10**4,
        "quick": 50,
        "what": "open connections",
        "description": (
            "Protocol server and its clients on the same loop (`create_server`, "
            "`create_connection` on 127.0.0.1): 2 transports per connection"
        ),
    },
}


# ------------------------------------------------------------------------- in the child


def _maxrss_bytes() -> int:
    """Peak RSS of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024


def _rss_bytes() -> int | None:
    """Current RSS (VmRSS), or None where there is no /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _sample(
    count: int, baseline: tuple[int, int | None], peak: tuple[int, int | None]
) -> dict[str, Any]:
    return {
        "count": count,
        "baseline": baseline[0],
        "baseline_rss": baseline[1],
        "peak": peak[0],
        "peak_rss": peak[1],
    }


def _noop() -> None:
    pass


def child_timers(new_loop: wl.LoopFactory, n: int) -> dict[str, Any]:
    handles: list[Any] = [None] * n  # before the baseline: the list is not the loop's memory
    gc.collect()
    loop = new_loop()
    baseline = _maxrss_bytes(), _rss_bytes()

    async def main() -> tuple[int, int | None]:
        running = asyncio.get_running_loop()
        call_later = running.call_later
        for i in range(n):
            handles[i] = call_later(3600 + i * 1e-6, _noop)
        await asyncio.sleep(0)  # one loop iteration with every timer pending
        peak = _maxrss_bytes(), _rss_bytes()
        for h in handles:
            h.cancel()
        return peak

    try:
        peak = loop.run_until_complete(main())
    finally:
        loop.close()
    return _sample(n, baseline, peak)


def raise_nofile() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return soft if soft != resource.RLIM_INFINITY else hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft
    return hard


def connections_that_fit(wanted: int) -> int:
    """How many connections (2 fds each, client and server side) the fd limit has room for."""
    return max(1, min(wanted, (raise_nofile() - FD_RESERVE) // 2))


def child_connections(new_loop: wl.LoopFactory, n: int) -> dict[str, Any]:
    limit = raise_nofile()
    if 2 * n + FD_RESERVE > limit:
        raise RuntimeError(f"{n} connections need {2 * n + FD_RESERVE} fds; the limit is {limit}")
    gc.collect()
    loop = new_loop()
    baseline = _maxrss_bytes(), _rss_bytes()

    async def main() -> tuple[int, int | None]:
        running = asyncio.get_running_loop()
        all_accepted = asyncio.Event()
        server_side: list[asyncio.BaseTransport] = []

        class Server(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                server_side.append(transport)
                if len(server_side) == n:
                    all_accepted.set()

        server = await running.create_server(Server, "127.0.0.1", 0, backlog=BACKLOG)
        port = server.sockets[0].getsockname()[1]
        clients: list[asyncio.BaseTransport] = []
        try:
            for start in range(0, n, CONNECT_BATCH):
                batch = min(CONNECT_BATCH, n - start)
                made = await asyncio.gather(
                    *(
                        running.create_connection(asyncio.Protocol, "127.0.0.1", port)
                        for _ in range(batch)
                    )
                )
                clients.extend(transport for transport, _ in made)
            await all_accepted.wait()
            return _maxrss_bytes(), _rss_bytes()
        finally:
            for transport in clients + server_side:
                transport.close()
            server.close()
            for _ in range(3):  # let connection_lost run
                await asyncio.sleep(0)

    try:
        peak = loop.run_until_complete(main())
    finally:
        loop.close()
    return _sample(n, baseline, peak)


CHILDREN = {"timers_1e6": child_timers, "connections_1e4": child_connections}


def child_main(loop_name: str, workload: str, size: int) -> int:
    result: dict[str, Any] = {"loop": loop_name, "workload": workload, "size": size}
    try:
        factory, version = wl.loop_factory(loop_name)
        result.update(CHILDREN[workload](factory, size), version=version)
    except Exception as exc:  # noqa: BLE001 - reported per loop, never a crash of the run
        import traceback

        traceback.print_exc()
        result["error"] = f"{type(exc).__name__}: {exc}"
        print(json.dumps(result), flush=True)
        return 1
    print(json.dumps(result), flush=True)
    return 0


# ------------------------------------------------------------------------ in the parent


def to_mib(n: int | None) -> float | None:
    return None if n is None else n / MIB


def mib(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def summarise(rows: list[dict[str, Any]]) -> None:
    """Medians of baseline, peak and delta, status and the ratio to asyncio, in place."""
    for row in rows:
        ok = [s for s in row["samples"] if s is not None]
        for key in ("baseline_mib", "peak_mib", "delta_mib"):
            row[key] = statistics.median(s[key] for s in ok) if ok else None
        if row["status"] == "not installed":
            continue
        if row["errors"]:
            row["status"] = "failed"
            if ok:
                row["status"] += f" ({len(row['errors'])}/{len(row['samples'])} samples)"
            row["error"] = row["errors"][-1]
        else:
            row["status"] = "ok"
    by_key = {(r["workload"], r["loop"]): r for r in rows}
    for row in rows:
        base = by_key.get((row["workload"], "asyncio"))
        row["vs_asyncio"] = None
        if row["status"] == "ok" and base and base["status"] == "ok" and base["delta_mib"]:
            row["vs_asyncio"] = row["delta_mib"] / base["delta_mib"]


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'workload':<16} {'count':>9} {'loop':<9} {'baseline MiB':>12} {'peak MiB':>9} "
        f"{'delta MiB':>9} {'vs asyncio':>10}  note"
    )
    print(head)
    print("-" * len(head))
    last = None
    for row in rows:
        name = row["workload"] if row["workload"] != last else ""
        count = f"{row['count']:,}" if name else ""
        last = row["workload"]
        note = "" if row["status"] == "ok" else f"{row['status']}: {row.get('error') or ''}"[:70]
        print(
            f"{name:<16} {count:>9} {row['loop']:<9} {mib(row['baseline_mib']):>12} "
            f"{mib(row['peak_mib']):>9} {mib(row['delta_mib']):>9} "
            f"{fmt_ratio(row['vs_asyncio']):>10}  {note}"
        )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        if len(argv) != 4:
            sys.stderr.write(__doc__ or "")
            return 2
        return child_main(argv[1], argv[2], int(argv[3]))

    ap = argparse.ArgumentParser(
        description="peak RSS of asyncio, uvloop, rloop and steploop; a fresh process per sample"
    )
    ap.add_argument("--quick", action="store_true", help="1 sample, tiny sizes (smoke test)")
    ap.add_argument("--loops", default=",".join(wl.LOOPS), help="comma-separated loop names")
    ap.add_argument("--samples", type=int, default=None, help="samples per pair (default 3)")
    ap.add_argument("--timers", type=int, default=None, help="pending timers (default 10^6)")
    ap.add_argument("--connections", type=int, default=None, help="open connections (default 10^4)")
    ap.add_argument("--out", default=None, help=f"output file (default {DEFAULT_OUT})")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per sample process")
    args = ap.parse_args(argv)

    loops = [name.strip() for name in args.loops.split(",") if name.strip()]
    unknown = [name for name in loops if name not in wl.LOOPS]
    if unknown:
        ap.error(f"unknown loop(s) {', '.join(unknown)}; known: {', '.join(wl.LOOPS)}")
    mode = "quick" if args.quick else "full"
    samples = args.samples or (1 if args.quick else 3)
    timeout = args.timeout or (60.0 if args.quick else 600.0)
    out = args.out or (None if args.quick else DEFAULT_OUT)
    requested = {
        "timers_1e6": args.timers or WORKLOADS["timers_1e6"][mode],
        "connections_1e4": args.connections or WORKLOADS["connections_1e4"][mode],
    }
    # the children inherit the hard limit: the same count on every loop
    sizes = dict(requested, connections_1e4=connections_that_fit(requested["connections_1e4"]))
    if sizes["connections_1e4"] < requested["connections_1e4"]:
        print(
            f"# RLIMIT_NOFILE hard limit {resource.getrlimit(resource.RLIMIT_NOFILE)[1]}: "
            f"{sizes['connections_1e4']:,} connections instead of "
            f"{requested['connections_1e4']:,}",
            file=sys.stderr,
        )

    started = time.monotonic()
    info = {loop: probe(loop, 60.0) for loop in loops}
    for loop, status in info.items():
        state = (
            f"version {status['version']}"
            if status["available"]
            else f"NOT AVAILABLE ({status['error']})"
        )
        print(f"# {loop}: {state}", file=sys.stderr)

    rows = [
        {
            "workload": name,
            "loop": loop,
            "count": sizes[name],
            "requested": requested[name],
            "status": "pending" if info[loop]["available"] else "not installed",
            "error": None if info[loop]["available"] else info[loop]["error"],
            "errors": [],
            "samples": [],
        }
        for name in WORKLOADS
        for loop in loops
    ]
    by_key = {(r["workload"], r["loop"]): r for r in rows}
    runnable = [loop for loop in loops if info[loop]["available"]]
    for sample in range(samples):
        for i, name in enumerate(WORKLOADS):
            shift = (sample + i) % max(1, len(runnable))
            progress = []
            for loop in runnable[shift:] + runnable[:shift]:
                row = by_key[(name, loop)]
                if row["errors"]:
                    continue  # failed once: it would again
                code, data, err = run_child(
                    ["--child", loop, name, str(sizes[name])],
                    timeout,
                    args.quick,
                    script=os.path.abspath(__file__),
                )
                if code == 0 and "peak" in data:
                    sample_mib = {
                        "baseline_mib": data["baseline"] / MIB,
                        "peak_mib": data["peak"] / MIB,
                        "delta_mib": (data["peak"] - data["baseline"]) / MIB,
                        "baseline_vmrss_mib": to_mib(data["baseline_rss"]),
                        "peak_vmrss_mib": to_mib(data["peak_rss"]),
                    }
                    row["samples"].append(sample_mib)
                    progress.append(f"{loop} {sample_mib['delta_mib']:.1f}")
                else:
                    row["samples"].append(None)
                    if code is None:
                        row["errors"].append(f"timed out after {timeout:.0f} s")
                    else:
                        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
                        row["errors"].append(data.get("error") or (lines or ["no output"])[-1])
                    progress.append(f"{loop} FAILED")
            print(
                f"[{sample + 1}/{samples}] {name:<16} delta MiB: " + ", ".join(sorted(progress)),
                file=sys.stderr,
            )

    summarise(rows)
    for row in rows:
        row.pop("errors", None)
    elapsed = time.monotonic() - started
    print(file=sys.stderr)
    print_table(rows)
    print(
        "MiB: lower is better. baseline: ru_maxrss right after new_event_loop(); peak: ru_maxrss"
        "\nwith everything open; delta = peak - baseline. vs asyncio: delta / asyncio's delta."
    )

    result = {
        "meta": {
            **machine_meta(),
            "loops": info,
            "quick": args.quick,
            "samples": samples,
            "nofile_hard_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
            "elapsed": elapsed,
            "command": " ".join(["python", "benches/memory.py", *argv]),
        },
        "workloads": [
            {
                "name": name,
                "what": w["what"],
                "description": w["description"],
                "count": sizes[name],
                "requested": requested[name],
            }
            for name, w in WORKLOADS.items()
        ],
        "results": rows,
    }
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        tmp = out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        os.replace(tmp, out)
        print(f"results saved to {out}", file=sys.stderr)

    broken = [r["workload"] for r in rows if r["loop"] == "asyncio" and r["status"] != "ok"]
    if broken:
        print(f"benchmark broken: failed on asyncio: {', '.join(broken)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
