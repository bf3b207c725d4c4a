"""Profile before optimising: instruction counts (callgrind) and syscalls (strace).

    python benches/profile.py            # writes benches/results/profile.json
    python benches/render.py             # adds the "Profile" section to docs/benchmarks.md

* Instructions per operation: each workload runs under ``valgrind --tool=callgrind`` twice,
  with N and with 1 operations, and the difference is divided by N-1, so interpreter start-up
  and imports cancel out. callgrind counts instructions, which repeat exactly for the same
  binary and input whatever else the machine does (unlike time on a shared machine); the
  kernel's side of a syscall is not counted.
* Instructions per echoed message: the echo servers of benches/workloads.py under callgrind,
  their client (benches/echo_client.py) in another process, natively; N and 1 messages.
* Syscalls per loop entry: ``strace -c -f`` of 1000 ``stop(); run_forever()`` entries minus a
  run with 1 entry, per loop.

Needs valgrind and strace (Debian packages); a loop that is not installed is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))

FACTORIES = {
    "asyncio": "import asyncio; mk = asyncio.new_event_loop",
    "uvloop": "import uvloop; mk = uvloop.new_event_loop",
    "rloop": "import rloop; mk = rloop.new_event_loop",
    "steploop": "import steploop; mk = steploop.new_event_loop",
}

# name -> (what one operation is, program run with N in sys.argv[1])
WORKLOADS = {
    "call_soon_chain": (
        "one call_soon + one iteration running it",
        """
import asyncio, sys
{factory}
loop = mk(); n = int(sys.argv[1]); cnt = [0]
def cb():
    cnt[0] += 1
    if cnt[0] < n: loop.call_soon(cb)
    else: loop.stop()
loop.call_soon(cb); loop.run_forever(); loop.close()
""",
    ),
    "call_soon_fanout": (
        "one call_soon (1000 per iteration)",
        """
import asyncio, sys
{factory}
loop = mk(); n = int(sys.argv[1])
def noop(): pass
for _ in range(n // 1000 or 1):
    for _ in range(1000): loop.call_soon(noop)
    loop.stop(); loop.run_forever()
loop.close()
""",
    ),
    "stop_run_forever": (
        "one loop entry: stop(); run_forever()",
        """
import asyncio, sys
{factory}
loop = mk()
for _ in range(int(sys.argv[1])): loop.stop(); loop.run_forever()
loop.close()
""",
    ),
    "run_until_complete_sleep0": (
        "run_until_complete(asyncio.sleep(0))",
        """
import asyncio, sys
{factory}
loop = mk()
for _ in range(int(sys.argv[1])): loop.run_until_complete(asyncio.sleep(0))
loop.close()
""",
    ),
    "task_sleep0_step": (
        "one task step: await asyncio.sleep(0) (100 tasks)",
        """
import asyncio, sys
{factory}
n = int(sys.argv[1])
async def w():
    for _ in range(max(n // 100, 1)): await asyncio.sleep(0)
async def main(): await asyncio.gather(*[w() for _ in range(100)])
loop = mk(); loop.run_until_complete(main()); loop.close()
""",
    ),
}

# Echo servers (benches/workloads.py's, with its client in another process, which callgrind
# does not follow): the server process's instructions per echoed message. One connection and
# 1 KiB messages, so every message is one read and one write whatever the timing. Under
# callgrind the server runs ~50x slower than its client, so the next message is often
# there before the server polls: a transport's reader runs the same code either way, but
# `sock_recv` would take its no-wait path almost every time, which is not what it does at
# native speed; so the `sock_*` server is not profiled here.
ECHO_MODES = {
    "echo_proto_1k_c1": ("proto", "one 1 KiB echo message, protocol server (server process)"),
    "echo_streams_1k_c1": ("streams", "one 1 KiB echo message, streams server (server process)"),
}

ECHO_PROGRAM = """
import sys
sys.path.insert(0, {benches!r})
import workloads
{factory}
workloads._echo(mk, int(sys.argv[1]), {mode!r}, 1024, 1)
"""


def echo_messages(n: int) -> int:
    """Messages `workloads._echo(..., n, ..., conc=1)` exchanges: its warm-up, then n."""
    return n + max(2, n // 10)


def stderr_of(tool: list[str], loop: str, program: str, n: int) -> str:
    """Run ``program`` on ``loop`` with ``n`` in sys.argv[1] under ``tool``; its stderr."""
    code = program.format(factory=FACTORIES[loop])
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(code)
        path = f.name
    try:
        return subprocess.run(
            [*tool, sys.executable, path, str(n)],
            capture_output=True,
            text=True,
            check=True,
        ).stderr
    finally:
        os.unlink(path)


def instructions(loop: str, program: str, n: int) -> int:
    """Instructions callgrind counts for the whole run (the process started, not children)."""
    callgrind = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    out = stderr_of(callgrind, loop, program, n)
    m = re.search(r"Collected : ([\d,]+)", out)
    if not m:
        raise RuntimeError(f"no callgrind total for {loop}: {out[-500:]}")
    return int(m.group(1).replace(",", ""))


def syscalls(loop: str, n: int) -> dict[str, int]:
    program = WORKLOADS["stop_run_forever"][1]
    out = stderr_of(["strace", "-c", "-f", "-o", "/dev/stderr"], loop, program, n)
    counts: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        # "% time seconds usecs/call calls [errors] syscall"
        if len(parts) >= 5 and parts[-1].isidentifier() and parts[3].isdigit():
            counts[parts[-1]] = int(parts[3])
    return counts


def installed(loop: str) -> bool:
    probe = FACTORIES[loop].split(";")[0]
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, check=False)
    return proc.returncode == 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--n", type=int, default=20001, help="operations per measured run")
    ap.add_argument("--echo-n", type=int, default=2001, help="messages per measured echo run")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "profile.json"))
    ap.add_argument("--only", default="", help="regex: only these workloads (and no syscalls)")
    args = ap.parse_args(argv)
    loops = [lp for lp in FACTORIES if installed(lp)]
    result: dict[str, Any] = {"n": args.n, "echo_n": args.echo_n, "instructions": {}}
    result.update(syscalls={}, ops={})
    wanted = re.compile(args.only or ".")
    for name, (what, program) in WORKLOADS.items():
        if not wanted.search(name):
            continue
        result["ops"][name] = what
        row: dict[str, float] = {}
        for lp in loops:
            base = instructions(lp, program, 1)
            full = instructions(lp, program, args.n)
            row[lp] = round((full - base) / (args.n - 1))
            print(f"{name:28} {lp:9} {row[lp]:>8} instructions per op", file=sys.stderr)
        result["instructions"][name] = row
    os.environ.setdefault("BENCH_CLIENT_TIMEOUT", "300")  # the server runs under callgrind
    # steploop's busy polling off: how long its waits spin depends on timing, which callgrind
    # stretches ~50x for the server only; these rows count the code each message runs.
    os.environ["STEPLOOP_BUSY_POLL_US"] = "0"
    for name, (mode, what) in ECHO_MODES.items():
        if not wanted.search(name):
            continue
        result["ops"][name] = what
        program = ECHO_PROGRAM.replace("{mode!r}", repr(mode)).replace("{benches!r}", repr(HERE))
        row = {}
        for lp in loops:
            base = instructions(lp, program, 1)
            full = instructions(lp, program, args.echo_n)
            row[lp] = round((full - base) / (echo_messages(args.echo_n) - echo_messages(1)))
            print(f"{name:28} {lp:9} {row[lp]:>8} instructions per message", file=sys.stderr)
        result["instructions"][name] = row
    for lp in loops if not args.only else []:
        one, many = syscalls(lp, 1), syscalls(lp, 1001)
        per = {k: round((v - one.get(k, 0)) / 1000, 2) for k, v in many.items()}
        result["syscalls"][lp] = {k: v for k, v in sorted(per.items()) if v > 0}
        print(f"syscalls per entry {lp:9} {result['syscalls'][lp]}", file=sys.stderr)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
