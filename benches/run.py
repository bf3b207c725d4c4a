"""Run the Python benchmarks on asyncio, uvloop, rloop and steploop in one run.

Usage::

    python benches/run.py [--quick] [--loops asyncio,uvloop,rloop,steploop] [--samples N]
                          [--only PATTERN] [--json OUT] [--timeout S]

Every sample of every (workload, loop) pair is a fresh process (``benches/workloads.py``),
which warms up before it times. Samples are interleaved: sample 1 of every workload on every
loop, then sample 2…, with the loop order rotated each time, so that a burst of noise from
the machine does not land on one loop only. The table gives, per workload and loop, the
median throughput, the spread of the samples, the ratio to asyncio and the ratio to the
fastest *other* loop among uvloop and rloop (higher is better for both).

A loop that is not installed, or that fails or hangs on a workload, is reported in its row
(and a pair that failed once is not sampled again); the run goes on. So is a workload that
cannot run on this machine at all (the uvicorn rows without wrk): "skipped", with the reason.
The exit status is 1 only when a workload fails on asyncio itself, which means the benchmark
is broken.
``--quick`` (one sample, tiny sizes, two processes at a time) checks that every workload
still runs; its figures mean nothing.

Full runs save ``benches/results/latest.json`` unless ``--json`` says otherwise;
``python benches/render.py`` turns it into ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import workloads as wl

DEFAULT_JSON = os.path.join(HERE, "results", "latest.json")
WORKLOADS_PY = os.path.join(HERE, "workloads.py")
#: the loops a steploop result is compared with in the "vs best" column
RIVALS = ("uvloop", "rloop")
#: environment variables that would turn on asyncio's debug mode in the children
DEBUG_ENV = ("PYTHONASYNCIODEBUG", "PYTHONDEVMODE")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_meta() -> dict[str, Any]:
    """What every results file says about when and where it was measured."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "commit": git_commit(),
    }


def git_commit() -> str | None:
    """The work tree's commit (with ``-dirty`` when it has changes), to date a steploop build."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=10"],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def tool_versions() -> dict[str, str | None]:
    """Versions of what the uvicorn workloads use (None: missing, so those rows are skipped)."""
    tools: dict[str, str | None] = {}
    for dist in ("uvicorn", "httptools"):
        try:
            tools[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            tools[dist] = None
    wrk = shutil.which("wrk")
    tools["wrk"] = None
    if wrk:
        try:
            out = subprocess.run(
                [wrk, "--version"], capture_output=True, text=True, timeout=10, check=False
            )
            # "wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer"
            words = (out.stdout + out.stderr).split()
            tools["wrk"] = words[1] if len(words) > 1 else "unknown version"
        except (OSError, subprocess.SubprocessError):
            tools["wrk"] = "unknown version"
    return tools


def child_env(quick: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DEBUG_ENV}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # how long the echo client waits on a silent server before it gives up
    env["BENCH_CLIENT_TIMEOUT"] = "5" if quick else "15"
    return env


def run_child(
    args: list[str], timeout: float, quick: bool = False, script: str = WORKLOADS_PY
) -> tuple[int | None, dict[str, Any], str]:
    """Run ``script`` (workloads.py) with ``args`` in its own session; return (status, the
    last JSON line of its output, stderr).

    The status is None on timeout, after the whole process group (the workload and its echo
    client processes) has been killed.
    """
    proc = subprocess.Popen(
        [sys.executable, script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(quick),
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        return None, {}, err
    lines = [line for line in out.splitlines() if line.startswith("{")]
    try:
        data = json.loads(lines[-1]) if lines else {}
    except ValueError:
        data = {}
    return proc.returncode, data, err


def probe(loop: str, timeout: float) -> dict[str, Any]:
    code, data, err = run_child(["--probe", loop], timeout)
    if code == 0 and data.get("ok"):
        return {"available": True, "version": data["version"], "error": None}
    error = data.get("error") or (err.strip().splitlines() or ["probe failed"])[-1]
    if code is None:
        error = f"probe timed out after {timeout:.0f} s"
    return {"available": False, "version": None, "error": error}


def last_error_line(data: dict[str, Any], err: str) -> str:
    if data.get("error"):
        return str(data["error"])
    lines = [line for line in err.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def fmt_rate(x: float | None) -> str:
    if x is None:
        return "-"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def summarise(rows: list[dict[str, Any]]) -> None:
    """Fill in median/min/max/status and the two ratios of every row, in place."""
    for row in rows:
        rates = [s for s in row["samples"] if s is not None]
        row["median"] = statistics.median(rates) if rates else None
        row["min"] = min(rates) if rates else None
        row["max"] = max(rates) if rates else None
        cpu = row.get("cpu_samples") or []
        row["cpu_us_per_msg"] = statistics.median(cpu) if cpu else None
        if row["status"] in ("not installed", "skipped"):
            continue
        if row["errors"]:
            ok = len(rates)
            row["status"] = "timeout" if row.get("timed_out") else "failed"
            if ok:
                row["status"] += f" ({len(row['errors'])}/{ok + len(row['errors'])} samples)"
            row["error"] = row["errors"][-1]
        else:
            row["status"] = "ok"
    by_key = {(r["workload"], r["loop"]): r for r in rows}
    for row in rows:
        row["vs_asyncio"] = row["vs_best_other"] = row["best_other"] = None
        if row["status"] != "ok":
            continue
        base = by_key.get((row["workload"], "asyncio"))
        if base and base["status"] == "ok":
            row["vs_asyncio"] = row["median"] / base["median"]
        others = [
            by_key[(row["workload"], r)]
            for r in RIVALS
            if r != row["loop"] and (row["workload"], r) in by_key
        ]
        others = [o for o in others if o["status"] == "ok"]
        if others:
            best = max(others, key=lambda o: o["median"])
            row["best_other"] = best["loop"]
            row["vs_best_other"] = row["median"] / best["median"]


def print_table(rows: list[dict[str, Any]], out: Any = sys.stdout) -> None:
    head = (
        f"{'workload':<22} {'loop':<9} {'median ops/s':>12} {'spread':>7} "
        f"{'vs asyncio':>10} {'vs best uv/r':>12}  note"
    )
    print(head, file=out)
    print("-" * len(head), file=out)
    last = None
    for row in rows:
        name = row["workload"] if row["workload"] != last else ""
        last = row["workload"]
        spread = "-"
        if row["median"] and row["min"] is not None and len(row["samples"]) > 1:
            spread = f"±{50 * (row['max'] - row['min']) / row['median']:.0f}%"
        note = row.get("variant") or ""
        if row.get("cpu_us_per_msg") is not None:
            note = f"server CPU {row['cpu_us_per_msg']:.1f} us/msg {note}".strip()
        if row["status"] != "ok":
            note = f"{row['status']}: {row.get('error') or ''}"[:70]
        elif row["best_other"]:
            note = f"(vs {row['best_other']}) {note}".strip()
        print(
            f"{name:<22} {row['loop']:<9} {fmt_rate(row['median']):>12} {spread:>7} "
            f"{fmt_ratio(row['vs_asyncio']):>10} {fmt_ratio(row['vs_best_other']):>12}  {note}",
            file=out,
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="asyncio vs uvloop vs rloop vs steploop, a fresh process per sample"
    )
    ap.add_argument("--quick", action="store_true", help="1 sample, tiny sizes (smoke test)")
    ap.add_argument("--loops", default=",".join(wl.LOOPS), help="comma-separated loop names")
    ap.add_argument("--samples", type=int, default=None, help="samples per pair (default 5)")
    ap.add_argument("--only", default=None, help="regex searched in workload names")
    ap.add_argument("--json", default=None, help=f"output file (default {DEFAULT_JSON})")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per sample process")
    ap.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="loops sampled at the same time (default 1; 2 with --quick, whose timings are moot)",
    )
    ap.add_argument("--list", action="store_true", help="list the workloads and exit")
    args = ap.parse_args(argv)

    workloads = list(wl.WORKLOADS.values())
    if args.only:
        pattern = re.compile(args.only)
        workloads = [w for w in workloads if pattern.search(w.name)]
    if args.list or not workloads:
        for w in workloads:
            size = f"{w.size} s" if w.external else str(w.size)
            print(f"{w.name:<22} {w.group:<10} {size:>9}  {w.description}")
        return 0 if workloads else 2
    loops = [name.strip() for name in args.loops.split(",") if name.strip()]
    unknown = [name for name in loops if name not in wl.LOOPS]
    if unknown:
        ap.error(f"unknown loop(s) {', '.join(unknown)}; known: {', '.join(wl.LOOPS)}")
    samples = args.samples or (1 if args.quick else 5)
    jobs = max(1, args.jobs or (2 if args.quick else 1))
    timeout = args.timeout or (20.0 if args.quick else 90.0)
    json_out = args.json or (None if args.quick else DEFAULT_JSON)

    started = time.monotonic()
    info = {loop: probe(loop, 60.0) for loop in loops}
    for loop, status in info.items():
        state = (
            f"version {status['version']}"
            if status["available"]
            else f"NOT AVAILABLE ({status['error']})"
        )
        print(f"# {loop}: {state}", file=sys.stderr)
    tools = tool_versions()
    if any(w.external for w in workloads):
        print("# " + ", ".join(f"{k} {v or 'MISSING'}" for k, v in tools.items()), file=sys.stderr)

    rows = [
        {
            "workload": w.name,
            "group": w.group,
            "loop": loop,
            "size": w.quick if args.quick else w.size,
            "status": "pending" if info[loop]["available"] else "not installed",
            "error": None if info[loop]["available"] else info[loop]["error"],
            "errors": [],
            "samples": [],
            "variant": "",
        }
        for w in workloads
        for loop in loops
    ]
    by_key = {(r["workload"], r["loop"]): r for r in rows}
    runnable = [loop for loop in loops if info[loop]["available"]]
    for sample in range(samples):
        for i, w in enumerate(workloads):
            shift = (sample + i) % max(1, len(runnable))
            progress = []
            # failed or hung once: the next samples would too, and take time
            todo = [
                by_key[(w.name, loop)]
                for loop in runnable[shift:] + runnable[:shift]
                if not by_key[(w.name, loop)]["errors"]
                and by_key[(w.name, loop)]["status"] != "skipped"
            ]
            argv_of = [[row["loop"], w.name, str(row["size"])] for row in todo]
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                outcomes = list(pool.map(lambda a: run_child(a, timeout, args.quick), argv_of))
            for row, (code, data, err) in zip(todo, outcomes):
                loop = row["loop"]
                if code == 0 and data.get("skipped"):
                    row["status"] = "skipped"
                    row["error"] = data["skipped"]
                    progress.append(f"{loop} skipped")
                elif code == 0 and "ops_per_sec" in data:
                    row["samples"].append(data["ops_per_sec"])
                    row["ops"] = data["ops"]
                    row["variant"] = data.get("variant", "")
                    if "cpu_us_per_msg" in data:
                        row.setdefault("cpu_samples", []).append(data["cpu_us_per_msg"])
                    progress.append(f"{loop} {fmt_rate(data['ops_per_sec'])}")
                else:
                    row["samples"].append(None)
                    if code is None:
                        row["timed_out"] = True
                        row["errors"].append(f"timed out after {timeout:.0f} s")
                    else:
                        row["errors"].append(last_error_line(data, err))
                    progress.append(f"{loop} FAILED")
            print(
                f"[{sample + 1}/{samples}] {w.name:<22} " + ", ".join(sorted(progress)),
                file=sys.stderr,
            )

    summarise(rows)
    for row in rows:
        row.pop("errors", None)
        row.pop("timed_out", None)
    elapsed = time.monotonic() - started
    print(file=sys.stderr)
    print_table(rows)
    print("ops/s: higher is better; ratios above 1.00x mean faster than the reference.")
    print(
        f"\n{len(workloads)} workloads x {len(loops)} loops x {samples} samples in {elapsed:.0f} s",
        file=sys.stderr,
    )

    result = {
        "meta": {
            **machine_meta(),
            "loops": info,
            "tools": tools,
            "quick": args.quick,
            "samples": samples,
            "only": args.only,
            "elapsed": elapsed,
            "command": " ".join(["python", "benches/run.py", *(argv or sys.argv[1:])]),
        },
        "workloads": [
            {"name": w.name, "group": w.group, "description": w.description, "unit": w.unit}
            for w in workloads
        ],
        "results": rows,
    }
    if json_out:
        os.makedirs(os.path.dirname(os.path.abspath(json_out)), exist_ok=True)
        tmp = json_out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        os.replace(tmp, json_out)
        print(f"results saved to {json_out}", file=sys.stderr)

    broken = [
        r["workload"]
        for r in rows
        if r["loop"] == "asyncio" and r["status"] not in ("ok", "skipped")
    ]
    if broken:
        print(f"benchmark broken: failed on asyncio: {', '.join(broken)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
