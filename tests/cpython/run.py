#!/usr/bin/env python3
"""Run CPython's own ``test.test_asyncio`` against steploop (or plain asyncio, for reference).

    python tests/cpython/run.py                       # steploop, every module in scope.MODULES
    python tests/cpython/run.py --loop asyncio        # the reference run
    python tests/cpython/run.py --modules test_tasks,test_locks -k test_cancel -v
    python tests/cpython/run.py --update-expected     # rewrite expected_failures.txt

Each module runs in its own subprocess (``_child.py``) with a module timeout (``--timeout``)
and a per-test timeout (``--test-timeout``). If the child crashes or one test hangs, that test
is recorded as an error and the module is restarted after it, so one segfault does not hide
the rest of the module. Results are compared with ``expected_failures.txt``:

* a failing test that is not listed fails the run (exit 1);
* a listed test that passes fails the run too ("unexpectedly passing — remove it"): the list
  only shrinks;
* every listed line needs a ``# reason``; a reason containing ``TODO`` fails the run;
* with ``--loop asyncio`` only entries whose reason starts with ``fails on asyncio too`` apply
  (the rest are steploop-specific and are expected to pass on asyncio);
* entries whose reason starts with ``flaky:`` are accepted both passing and failing.

Exit status: 0 all as expected, 1 unexpected results, 2 usage or expected-file errors.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import scope

CHILD = HERE / "_child.py"
EXPECTED_FILE = HERE / "expected_failures.txt"
DEFAULT_WORK_DIR = HERE / "work"
FAILING = frozenset({"fail", "error", "unexpected_success", "crash", "timeout"})
ASYNCIO_TOO = "fails on asyncio too"
FLAKY = "flaky:"
TODO_REASON = "TODO: triage"
MAX_RESTARTS = 25
STDERR_TAIL = 40  # lines of child output kept in crash/timeout messages
ID_RE = re.compile(r"^test_\w+\.\S+$")


# --------------------------------------------------------------------------- expected list


@dataclass
class Expected:
    reasons: dict[str, str] = field(default_factory=dict)  # test id -> reason
    header: list[str] = field(default_factory=list)  # leading comment block, kept on rewrite
    errors: list[str] = field(default_factory=list)


def load_expected(path: Path) -> Expected:
    exp = Expected()
    if not path.exists():
        return exp
    in_header = True
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            # The header is the first block of comment lines, up to the first blank line;
            # other comments (section titles) are regenerated on rewrite.
            if in_header and line:
                exp.header.append(raw)
            elif exp.header:
                in_header = False
            continue
        in_header = False
        tid, sep, reason = line.partition("#")
        tid, reason = tid.strip(), reason.strip()
        where = f"{path.name}:{lineno}"
        if not sep or not reason:
            exp.errors.append(f"{where}: no '# reason' for {tid}")
        elif "TODO" in reason:
            exp.errors.append(f"{where}: reason is still TODO for {tid}: write a real reason")
        if not ID_RE.match(tid):
            exp.errors.append(f"{where}: not a test id: {tid!r}")
        if tid in exp.reasons:
            exp.errors.append(f"{where}: duplicate entry {tid}")
        exp.reasons[tid] = reason
    return exp


def applies(reason: str, loop: str) -> bool:
    """Does an expected-failure entry apply to this loop?"""
    return loop == "steploop" or reason.startswith((ASYNCIO_TOO, FLAKY))


def module_of(test_id: str) -> str:
    return test_id.split(".", 1)[0].split(" ", 1)[0]


def write_expected(path: Path, exp: Expected, entries: dict[str, str]) -> None:
    lines = list(exp.header) if exp.header else default_header()
    by_module: dict[str, list[str]] = {}
    for tid in entries:
        by_module.setdefault(module_of(tid), []).append(tid)
    order = {m: i for i, m in enumerate(scope.MODULES)}
    for module in sorted(by_module, key=lambda m: (order.get(m, len(order)), m)):
        lines += ["", f"# --- {module}"]
        lines += [f"{tid}  # {entries[tid]}" for tid in sorted(by_module[module])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def default_header() -> list[str]:
    return [
        "# Tests of CPython's test.test_asyncio known to fail on steploop (tests/cpython/run.py).",
        "# One test id per line, then '  # reason'. A reason is mandatory; TODO is not allowed.",
        "# Reasons: 'white-box: ...' (test patches asyncio's private internals),",
        "# 'steploop bug: ...' (to fix; remove the line when fixed),",
        "# 'fails on asyncio too: ...' (also fails with --loop asyncio on this machine),",
        "# 'flaky: ...' (timing-dependent; accepted both passing and failing).",
    ]


# --------------------------------------------------------------------------- running


@dataclass
class ModuleRun:
    module: str
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> result record
    error: str | None = None  # module-level failure (timeout, child died before any test)
    seconds: float = 0.0
    restarts: int = 0


def read_records(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    if not path.exists():
        return [], offset
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read()
    # Only whole lines: a crash may leave a partial last line.
    end = data.rfind(b"\n") + 1
    records = []
    for raw in data[:end].splitlines():
        try:
            records.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    return records, offset + end


def pump(src: IO[bytes], log: IO[bytes], tail: list[str], echo: bool) -> None:
    for raw in iter(src.readline, b""):
        log.write(raw)
        log.flush()
        text = raw.decode("utf-8", "replace")
        tail.append(text)
        del tail[:-STDERR_TAIL]
        if echo:
            sys.stdout.write(text)
            sys.stdout.flush()


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def describe_exit(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit status {rc}"


def run_module(
    module: str,
    *,
    loop: str,
    timeout: float,
    test_timeout: float,
    select: Sequence[str],
    work_dir: Path,
    verbose: bool,
    unfiltered: bool = False,
) -> ModuleRun:
    run = ModuleRun(module)
    work_dir.mkdir(parents=True, exist_ok=True)
    out_path = work_dir / f"{module}.jsonl"
    log_path = work_dir / f"{module}.log"
    out_path.unlink(missing_ok=True)
    offset = 0
    start = time.monotonic()
    deadline = start + timeout
    skip_fd, skip_name = tempfile.mkstemp(prefix=f"steploop-{module}-", suffix=".skip")
    os.close(skip_fd)
    skip_path = Path(skip_name)
    try:
        with log_path.open("wb") as log:
            while True:
                skip_path.write_text("\n".join(run.results) + "\n", encoding="utf-8")
                cmd = [
                    sys.executable,
                    str(CHILD),
                    "--loop",
                    loop,
                    "--module",
                    module,
                    "--out",
                    str(out_path),
                    "--skip-file",
                    str(skip_path),
                    "--test-timeout",
                    str(test_timeout),
                ]
                for s in select:
                    cmd += ["--select", s]
                if verbose:
                    cmd.append("-v")
                if unfiltered:
                    cmd.append("--unfiltered")
                env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1")
                proc = subprocess.Popen(
                    cmd,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,  # own process group: a timeout kills it all
                )
                tail: list[str] = []
                assert proc.stdout is not None
                reader = threading.Thread(
                    target=pump, args=(proc.stdout, log, tail, verbose), daemon=True
                )
                reader.start()
                timed_out = False
                try:
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    timed_out = True
                    kill_group(proc)
                reader.join(timeout=5)

                records, offset = read_records(out_path, offset)
                running: str | None = None
                done = False
                for rec in records:
                    if rec["event"] == "start":
                        running = rec["id"]
                    elif rec["event"] == "result":
                        run.results[rec["id"]] = rec
                        if rec["id"] == running:
                            running = None
                    elif rec["event"] == "done":
                        done = True
                tail_text = crash_report("".join(tail))

                if timed_out:
                    what = f" while running {running}" if running else ""
                    run.error = (
                        f"module timed out after {timeout:.0f} s{what} "
                        f"(--timeout; child output in {log_path})"
                    )
                    if running:
                        run.results[running] = result(running, "timeout", run.error)
                    break
                if done:
                    if proc.returncode != 0 and not any(
                        r["id"].endswith(">") for r in run.results.values()
                    ):
                        # All tests ran, then the interpreter died on the way out.
                        run.error = (
                            f"child {describe_exit(proc.returncode)} after its tests ran "
                            f"(interpreter shutdown):\n{tail_text}"
                        )
                    break
                if running is None:
                    run.error = (
                        f"child {describe_exit(proc.returncode)} outside any test:\n{tail_text}"
                    )
                    break
                # A test crashed the child, or hung past --test-timeout (faulthandler exits 1
                # after printing "Timeout (h:mm:ss)!" and every thread's stack).
                if "Timeout (" in tail_text:
                    status, why = "timeout", f"hung for more than {test_timeout:.0f} s"
                else:
                    status, why = "crash", describe_exit(proc.returncode)
                run.results[running] = result(running, status, f"{why}:\n{tail_text}")
                run.restarts += 1
                if run.restarts > MAX_RESTARTS:
                    run.error = f"more than {MAX_RESTARTS} crashes/hangs, gave up"
                    break
                log.write(f"\n[run.py] {running}: {why}; restarting after it\n".encode())
    finally:
        skip_path.unlink(missing_ok=True)
    run.seconds = time.monotonic() - start
    return run


def crash_report(output: str) -> str:
    """The informative end of a dying child's output: from faulthandler's header on."""
    starts = [output.rfind(m) for m in ("Fatal Python error", "Timeout (", "Traceback (")]
    found = [i for i in starts if i >= 0]
    return (output[min(found) :] if found else output).strip()


def result(tid: str, status: str, message: str) -> dict[str, Any]:
    return {"event": "result", "id": tid, "status": status, "time": 0.0, "message": message}


# --------------------------------------------------------------------------- reporting


@dataclass
class Counts:
    tests: int = 0
    passed: int = 0
    failed: int = 0  # unexpected failures (not listed)
    expected: int = 0  # failing and listed in expected_failures.txt
    skipped: int = 0  # skipped, or unittest @expectedFailure
    unexpected_pass: int = 0  # listed but passing

    def add(self, other: Counts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def first_lines(message: str, status: str, n: int = 6) -> str:
    lines = [ln for ln in message.strip().splitlines() if ln.strip()]
    if status in ("crash", "timeout"):
        lines = lines[:n]  # the signal, faulthandler's header, the innermost frames
    elif len(lines) > n:
        # The end of a traceback (the exception) is the informative part.
        lines = lines[:2] + ["    ..."] + lines[-(n - 3) :]
    return "\n".join("      " + ln for ln in lines)


def evaluate(
    runs: Iterable[ModuleRun], exp: Expected, loop: str, selective: bool
) -> tuple[dict[str, Counts], list[str], list[str], dict[str, str]]:
    """Return (counts per module, problems, notes, current failures id -> reason)."""
    counts: dict[str, Counts] = {}
    problems: list[str] = []
    notes: list[str] = []
    failures: dict[str, str] = {}
    for run in runs:
        c = counts.setdefault(run.module, Counts())
        if run.error:
            problems.append(f"{run.module}: MODULE FAILED: {run.error}")
        for tid, rec in run.results.items():
            status = rec["status"]
            reason = exp.reasons.get(tid)
            listed = reason is not None and applies(reason, loop)
            c.tests += 1
            if status in FAILING:
                failures[tid] = reason if reason is not None else ""
                if listed:
                    c.expected += 1
                else:
                    c.failed += 1
                    problems.append(f"{tid}: {status.upper()} (not in expected_failures.txt)")
                    if rec.get("message"):
                        problems.append(first_lines(rec["message"], status))
            elif status in ("skip", "expected_failure"):
                c.skipped += 1
                if listed:
                    notes.append(f"{tid}: listed in expected_failures.txt but skipped here")
            else:
                c.passed += 1
                if listed:
                    assert reason is not None
                    if reason.startswith(FLAKY):
                        notes.append(f"{tid}: passed (listed as flaky)")
                    elif loop == "steploop" and reason.startswith(ASYNCIO_TOO):
                        notes.append(f"{tid}: passes on steploop (listed: {reason})")
                    else:
                        c.unexpected_pass += 1
                        problems.append(
                            f"{tid}: unexpectedly passing — remove it from expected_failures.txt"
                        )
        if not run.error and not selective:
            seen = set(run.results)
            for tid, reason in exp.reasons.items():
                if module_of(tid) == run.module and applies(reason, loop) and tid not in seen:
                    problems.append(
                        f"{tid}: listed in expected_failures.txt but not collected — remove it"
                    )
    return counts, problems, notes, failures


def print_table(counts: dict[str, Counts], runs: dict[str, ModuleRun], loop: str) -> None:
    cols = ("tests", "passed", "failed", "expected", "skipped", "unexpected_pass")
    heads = ("tests", "passed", "FAILED", "xfail(list)", "skipped", "list-but-pass")
    width = max([len(m) for m in counts] + [6])
    print(f"\n{'module'.ljust(width)}  " + "  ".join(h.rjust(11) for h in heads) + "     time")
    total = Counts()
    for module, c in counts.items():
        total.add(c)
        row = "  ".join(str(getattr(c, k)).rjust(11) for k in cols)
        run = runs[module]
        flag = "  MODULE FAILED" if run.error else ""
        extra = f" ({run.restarts} restarts)" if run.restarts else ""
        print(f"{module.ljust(width)}  {row}  {run.seconds:6.1f}s{extra}{flag}")
    row = "  ".join(str(getattr(total, k)).rjust(11) for k in cols)
    print(f"{'TOTAL'.ljust(width)}  {row}")
    print(
        f"\n{loop}: {total.passed} passed, {total.failed} failed unexpectedly, "
        f"{total.expected} expected failures, {total.skipped} skipped, of {total.tests} tests"
    )


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Run CPython's test.test_asyncio against steploop or asyncio.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    ap.add_argument("--loop", choices=("steploop", "asyncio"), default="steploop")
    ap.add_argument(
        "--modules",
        default=",".join(scope.MODULES),
        help="comma-separated test_asyncio modules (default: all in scope.MODULES)",
    )
    ap.add_argument(
        "--timeout", type=float, default=300.0, help="per-module timeout, s (default 300)"
    )
    ap.add_argument(
        "--test-timeout", type=float, default=60.0, help="per-test timeout, s (default 60)"
    )
    ap.add_argument(
        "-k",
        dest="select",
        action="append",
        default=[],
        help="only tests whose id contains this substring (repeatable)",
    )
    ap.add_argument(
        "--unfiltered",
        action="store_true",
        help="also run the tests scope.py excludes (network...): exploring issue 5's scope",
    )
    ap.add_argument("--update-expected", action="store_true", help="rewrite expected_failures.txt")
    ap.add_argument("--expected-file", type=Path, default=EXPECTED_FILE)
    ap.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="where child logs and JSON results go (default tests/cpython/work/<loop>)",
    )
    ap.add_argument("--json", type=Path, help="also write all results and counts here")
    ap.add_argument("-v", "--verbose", action="store_true", help="stream unittest -v output")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    modules = [m.strip() for m in args.modules.split(",") if m.strip()]
    unknown = [m for m in modules if importlib.util.find_spec(scope.ID_PREFIX + m) is None]
    if unknown:
        print(f"unknown test_asyncio modules: {', '.join(unknown)}", file=sys.stderr)
        return 2
    exp = load_expected(args.expected_file)
    if exp.errors and not args.update_expected:
        print("\n".join(exp.errors), file=sys.stderr)
        return 2
    work_dir = args.work_dir or DEFAULT_WORK_DIR / args.loop

    runs: dict[str, ModuleRun] = {}
    for module in modules:
        print(f"[{args.loop}] {module} ...", flush=True)
        runs[module] = run_module(
            module,
            loop=args.loop,
            timeout=args.timeout,
            test_timeout=args.test_timeout,
            select=args.select,
            work_dir=work_dir,
            verbose=args.verbose,
            unfiltered=args.unfiltered,
        )

    selective = bool(args.select) or args.unfiltered
    counts, problems, notes, failures = evaluate(runs.values(), exp, args.loop, selective)
    print_table(counts, runs, args.loop)
    if notes:
        print("\nNotes:")
        print("\n".join(f"  {n}" for n in notes))

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "loop": args.loop,
                    "counts": {m: vars(c) for m, c in counts.items()},
                    "module_errors": {m: r.error for m, r in runs.items() if r.error},
                    "results": {m: list(r.results.values()) for m, r in runs.items()},
                },
                indent=1,
            ),
            encoding="utf-8",
        )

    if args.update_expected:
        if selective:
            print(
                "--update-expected needs a plain run of each module (no -k, no --unfiltered)",
                file=sys.stderr,
            )
            return 2
        return update_expected(args.expected_file, exp, runs, failures, args.loop)

    if problems:
        print(f"\nUnexpected results ({len(problems)} lines):")
        print("\n".join(f"  {p}" for p in problems))
        print(f"\nChild logs and JSON results: {work_dir}")
        return 1
    print("\nAll results as expected.")
    return 0


def update_expected(
    path: Path, exp: Expected, runs: dict[str, ModuleRun], failures: dict[str, str], loop: str
) -> int:
    entries: dict[str, str] = {}
    for tid, reason in exp.reasons.items():
        if module_of(tid) not in runs or not applies(reason, loop):
            entries[tid] = reason  # not re-evaluated by this run: keep
        elif loop == "steploop" and (reason.startswith((ASYNCIO_TOO, FLAKY))):
            entries[tid] = reason  # asyncio-side facts are maintained by --loop asyncio runs
    for tid, reason in failures.items():
        if reason and applies(reason, loop):
            entries[tid] = reason
        elif loop == "asyncio":
            entries[tid] = f"{ASYNCIO_TOO}: {TODO_REASON}"
        else:
            entries[tid] = TODO_REASON
    module_errors = [f"{m}: {r.error}" for m, r in runs.items() if r.error]
    write_expected(path, exp, entries)
    todo = sorted(t for t, r in entries.items() if "TODO" in r)
    print(f"\nWrote {path} ({len(entries)} entries).")
    if todo:
        print(f"{len(todo)} entries need a reason (replace 'TODO: triage'):")
        print("\n".join(f"  {t}" for t in todo))
    if module_errors:
        print("Module failures (not expressible in the list):")
        print("\n".join(f"  {e}" for e in module_errors))
    return 1 if todo or module_errors else 0


if __name__ == "__main__":
    sys.exit(main())
