"""Child process of run.py: run one ``test.test_asyncio`` module with the loop substituted.

Usage (run.py does this; handy by hand too)::

    python tests/cpython/_child.py --loop steploop --module test_tasks --out /tmp/r.jsonl

Writes one JSON object per line to ``--out``, flushed as it goes so the parent can tell which
test was running if this process crashes or hangs:

    {"event": "start", "id": "test_tasks.X.test_y"}
    {"event": "result", "id": ..., "status": "ok|fail|error|skip|expected_failure|
                                               unexpected_success", "time": s, "message": ...}
    {"event": "done"}
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import importlib
import json
import os
import re
import signal
import sys
import time
import traceback
import unittest
from collections.abc import Iterator
from typing import IO, Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bindings
import scope

MESSAGE_LIMIT = 6000
# Worst status wins when a test reports several outcomes (subtests, errors in cleanups...).
SEVERITY = {
    "ok": 0,
    "skip": 1,
    "expected_failure": 2,
    "unexpected_success": 3,
    "fail": 4,
    "error": 5,
}


FIXTURE_RE = re.compile(r"^(\w+) \((.+)\)$")


def short_id(test_id: str) -> str:
    """``test.test_asyncio.test_x.C.m`` -> ``test_x.C.m``; fixture errors, which unittest
    names ``setUpClass (test.test_asyncio.test_x.C)``, -> ``test_x.C.<setUpClass>``."""
    m = FIXTURE_RE.match(test_id)
    if m:
        return f"{m.group(2).removeprefix(scope.ID_PREFIX)}.<{m.group(1)}>"
    return test_id.removeprefix(scope.ID_PREFIX)


def install_steploop() -> None:
    """Make steploop the default loop, in a way that survives ``set_event_loop_policy(None)``.

    ``asyncio.set_event_loop_policy(None)`` (test_asyncio's tearDownModule, many tests)
    resets the global policy to None; the next ``get_event_loop_policy()`` then instantiates
    ``asyncio.DefaultEventLoopPolicy`` via ``from . import DefaultEventLoopPolicy`` in
    ``asyncio.events._init_event_loop_policy``. Replacing that name on the package (and on
    ``asyncio.unix_events``, where it is defined) makes every fresh default policy, and hence
    ``asyncio.new_event_loop()``, ``asyncio.run()``, ``asyncio.Runner()`` and
    ``IsolatedAsyncioTestCase``, use steploop.
    """
    import asyncio.events
    import asyncio.unix_events

    import steploop

    policy_cls: Any = steploop.EventLoopPolicy
    asyncio.DefaultEventLoopPolicy = policy_cls
    asyncio.unix_events.DefaultEventLoopPolicy = policy_cls
    asyncio.events.DefaultEventLoopPolicy = policy_cls  # type: ignore[attr-defined]
    asyncio.set_event_loop_policy(None)

    loop = asyncio.new_event_loop()
    try:
        mod = type(loop).__module__
        if not mod.startswith("steploop"):
            raise RuntimeError(f"asyncio.new_event_loop() returned {type(loop)!r}, not steploop's")
    finally:
        loop.close()


def restore_sigint() -> None:
    """Give SIGINT the disposition of an interpreter started from a terminal.

    A non-interactive shell starts every ``cmd &`` job with SIGINT (and SIGQUIT) set to
    SIG_IGN, and an ignored disposition is inherited over fork and exec: ``run.py ... &`` or
    ``pytest ... &`` from a script, and everything under it, down to this process. Python then
    leaves SIGINT ignored instead of installing ``signal.default_int_handler``, and in
    test_runners ``asyncio.Runner.run()`` does not install its SIGINT handler (it only does
    when the current one is ``default_int_handler``) while ``_thread.interrupt_main()`` is a
    no-op for an ignored signal: test_asyncio_run_without_uncancel, test_interrupt_call_soon
    and test_interrupt_wait then wait forever for an interrupt that never comes, on any loop.
    This process is in its own session (run.py's ``start_new_session``), so no terminal
    Ctrl-C can reach it: restoring the handler only undoes what the launching shell did.
    A blocked SIGINT (the signal mask is inherited too) is unblocked for the same reason
    (test_events sends itself a real SIGINT)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def loop_factory(loop_name: str) -> bindings.LoopFactory:
    """The loop under test, built directly (not through the policy, which tests replace)."""
    if loop_name == "steploop":
        import steploop

        factory: bindings.LoopFactory = steploop.new_event_loop
        return factory
    return asyncio.SelectorEventLoop  # asyncio's default loop class on Unix


def iter_tests(suite: unittest.TestSuite | unittest.TestCase) -> Iterator[unittest.TestCase]:
    if isinstance(suite, unittest.TestSuite):
        for item in suite:
            yield from iter_tests(item)
    else:
        yield suite


class JsonResult(unittest.TextTestResult):
    """TextTestResult that also writes one JSON line per finished test."""

    out: IO[str]  # set by the runner before use
    test_timeout: float = 0.0

    def __init__(self, stream: Any, descriptions: bool, verbosity: int) -> None:
        super().__init__(stream, descriptions, verbosity)
        self._current: dict[str, Any] | None = None
        self._t0 = 0.0

    def _write(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()

    def _outcome(self, test: unittest.TestCase, status: str, message: str = "") -> None:
        tid = short_id(test.id())
        cur = self._current
        if cur is None or cur["id"] != tid:
            # An outcome outside startTest/stopTest: setUpClass/tearDownModule errors
            # (unittest reports them with an _ErrorHolder whose id names the fixture).
            self._write(
                {
                    "event": "result",
                    "id": tid,
                    "status": status,
                    "time": 0.0,
                    "message": message[:MESSAGE_LIMIT],
                }
            )
            return
        if SEVERITY[status] >= SEVERITY[cur["status"]]:
            cur["status"] = status
        if message:
            cur["messages"].append(message)

    def _fmt(self, err: Any) -> str:
        return "".join(traceback.format_exception(*err))

    def startTest(self, test: unittest.TestCase) -> None:
        tid = short_id(test.id())
        self._current = {"id": tid, "status": "ok", "messages": []}
        self._write({"event": "start", "id": tid})
        self._t0 = time.monotonic()
        if self.test_timeout > 0:
            # Dump every thread's stack and _exit(1) if this one test hangs; the parent sees
            # a started-but-unfinished test and restarts the module after it.
            faulthandler.dump_traceback_later(self.test_timeout, exit=True)
        super().startTest(test)

    def stopTest(self, test: unittest.TestCase) -> None:
        super().stopTest(test)
        faulthandler.cancel_dump_traceback_later()
        cur = self._current
        self._current = None
        if cur is None:
            return
        message = "\n".join(cur["messages"])
        self._write(
            {
                "event": "result",
                "id": cur["id"],
                "status": cur["status"],
                "time": round(time.monotonic() - self._t0, 4),
                "message": message[:MESSAGE_LIMIT],
            }
        )

    def addError(self, test: unittest.TestCase, err: Any) -> None:
        super().addError(test, err)
        self._outcome(test, "error", self._fmt(err))

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addFailure(test, err)
        self._outcome(test, "fail", self._fmt(err))

    def addSubTest(self, test: unittest.TestCase, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            status = "fail" if failed else "error"
            self._outcome(test, status, f"[subtest {subtest._subDescription()}]\n{self._fmt(err)}")

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        self._outcome(test, "skip", reason)

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._outcome(test, "expected_failure")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self._outcome(test, "unexpected_success", "unexpected success (@expectedFailure)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", choices=("steploop", "asyncio"), required=True)
    ap.add_argument("--module", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--skip-file", help="file with test ids (one a line) not to run")
    ap.add_argument("--select", action="append", default=[], help="run only ids containing this")
    ap.add_argument("--test-timeout", type=float, default=0.0)
    ap.add_argument("--unfiltered", action="store_true", help="ignore scope's exclusions")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    restore_sigint()
    faulthandler.enable()
    out = open(args.out, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process

    def fatal(what: str, status: str = "error") -> int:
        out.write(
            json.dumps(
                {
                    "event": "result",
                    "id": f"{args.module}.<{what}>",
                    "status": status,
                    "time": 0.0,
                    "message": traceback.format_exc()[:MESSAGE_LIMIT],
                }
            )
            + "\n"
        )
        out.write(json.dumps({"event": "done"}) + "\n")
        out.flush()
        return 1

    try:
        if args.loop == "steploop":
            install_steploop()
    except Exception:  # noqa: BLE001 - reported as a result, whatever it is
        return fatal("install steploop")

    try:
        module = importlib.import_module(scope.ID_PREFIX + args.module)
        bindings.bind(module, args.module, loop_factory(args.loop))
        loaded = unittest.defaultTestLoader.loadTestsFromModule(module)
    except unittest.SkipTest:  # the whole module skips itself (missing feature)
        return fatal("import", "skip")
    except Exception:  # noqa: BLE001 - reported as a result, whatever it is
        return fatal("import")

    skip: set[str] = set()
    if args.skip_file:
        with open(args.skip_file, encoding="utf-8") as f:
            skip = {line.strip() for line in f if line.strip()}

    selected: list[unittest.TestCase] = []
    for test in iter_tests(loaded):
        tid = short_id(test.id())
        parts = tid.split(".")
        if (
            not args.unfiltered
            and len(parts) == 3
            and scope.is_excluded(args.module, parts[1], parts[2])
        ):
            continue
        if tid in skip:
            continue
        if args.select and not any(s in tid for s in args.select):
            continue
        selected.append(test)

    JsonResult.out = out
    JsonResult.test_timeout = args.test_timeout
    runner = unittest.TextTestRunner(
        stream=sys.stderr, verbosity=2 if args.verbose else 1, resultclass=JsonResult
    )
    # A flat suite keeps unittest's class/module fixtures (setUpClass, tearDownModule).
    runner.run(unittest.TestSuite(selected))
    out.write(json.dumps({"event": "done"}) + "\n")
    out.flush()
    sys.stderr.flush()
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
