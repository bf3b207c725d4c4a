"""Run any asyncio program on steploop.

    python -m steploop [--debug] [--slow-callback-duration S] [--watchdog S] [--stats]
                       (script.py | -m module) [args ...]

Installs `steploop.EventLoopPolicy` (so `asyncio.run`, `asyncio.Runner` and
`asyncio.new_event_loop` all create steploop loops), then runs the script or module
as `__main__`, with `sys.argv` set as if it had been started by `python` itself.

`--debug` is `PYTHONASYNCIODEBUG=1`: every loop created starts in debug mode (and so
do loops of child processes, through the environment). `--slow-callback-duration S`
sets `loop.slow_callback_duration` on every loop created (asyncio's default: 0.1).
`--watchdog S` turns on `loop.set_blocking_watchdog(S)` on every loop created: a callback
that runs longer than S seconds is reported with the loop thread's stack while it runs.
`--stats` prints `loop.stats()` of every loop created, as a table on stderr, when the
program ends (the loops are kept alive until then).

    $ python -m steploop --stats --watchdog 0.5 server.py
"""

from __future__ import annotations

import argparse
import asyncio
import builtins
import importlib.machinery
import io
import math
import os
import runpy
import sys
import traceback
import types
import zipfile
from types import TracebackType

import steploop


class _ConfiguredPolicy(steploop.EventLoopPolicy):
    """`steploop.EventLoopPolicy` whose new loops get the command line's settings."""

    def __init__(
        self,
        *,
        debug: bool,
        slow_callback_duration: float | None,
        watchdog: float | None = None,
        stats: bool = False,
    ) -> None:
        super().__init__()
        self._debug = debug
        self._slow_callback_duration = slow_callback_duration
        self._watchdog = watchdog
        # With --stats: every loop made, in order, for the table at exit.
        self.loops: list[steploop.Loop] | None = [] if stats else None

    def new_event_loop(self) -> steploop.Loop:
        loop = super().new_event_loop()
        if self._debug:
            loop.set_debug(True)
        if self._slow_callback_duration is not None:
            loop.slow_callback_duration = self._slow_callback_duration
        if self._watchdog is not None:
            loop.set_blocking_watchdog(self._watchdog)
        if self.loops is not None:
            self.loops.append(loop)
        return loop


_STATS_UNITS = {
    "poll_time": "s",
    "busy_time": "s",
    "max_callback_time": "s",
    "lag_p50": "s",
    "lag_p99": "s",
}


def _stats_table(loops: list[steploop.Loop], *, timed: bool) -> str:
    """`loop.stats()` of each loop as a table: one block per loop. ``timed``: callbacks were
    timed (--debug or --watchdog), so ``max_callback_time`` was measured."""
    if not loops:
        return "steploop stats: no event loop was created\n"
    lines = []
    for number, loop in enumerate(loops, 1):
        state = "closed" if loop.is_closed() else "open"
        lines.append(f"steploop stats: loop {number} of {len(loops)} ({state})")
        for name, value in loop.stats().items():
            if name == "utilization":
                text = f"{value * 100:.1f} %"
            elif name in _STATS_UNITS:
                text = f"{value * 1000:.3f} ms"
            else:
                text = f"{int(value)}"
            if name == "max_callback_time" and not timed:
                text += "  (measured only with --debug or --watchdog)"
            lines.append(f"  {name:<18} {text}")
    return "\n".join(lines) + "\n"


def _threshold(text: str) -> float:
    value = _positive_float(text)
    if value == 0.0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0.0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m steploop",
        usage="%(prog)s [-h] [--debug] [--slow-callback-duration S] [--watchdog S] [--stats]"
        " (script.py | -m module) [args ...]",
        description="Run an asyncio program on the steploop event loop.",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="asyncio debug mode on every loop (like PYTHONASYNCIODEBUG=1)",
    )
    parser.add_argument(
        "--slow-callback-duration",
        type=_positive_float,
        metavar="S",
        help="in debug mode, log callbacks that run longer than S seconds (default 0.1)",
    )
    parser.add_argument(
        "--watchdog",
        type=_threshold,
        metavar="S",
        help="log the stack of any callback still running after S seconds, then its duration"
        " (loop.set_blocking_watchdog(S) on every loop)",
    )
    parser.add_argument(
        "--stats",
        action="store_true",
        help="print loop.stats() of every loop to stderr when the program ends",
    )
    # Both take everything that follows, so the program's own options are not ours.
    parser.add_argument(
        "-m",
        dest="module",
        nargs=argparse.REMAINDER,
        metavar="module [args]",
        help="run a library module as a script (terminates the option list)",
    )
    parser.add_argument(
        "script",
        nargs=argparse.REMAINDER,
        metavar="script.py [args]",
        help="the script to run, and its arguments",
    )
    return parser


def _strip_own_frames(tb: TracebackType | None) -> TracebackType | None:
    """Drop the frames of this file and of runpy from the head of a traceback."""
    own = {__file__, runpy.__file__, "<frozen runpy>"}
    while tb is not None and tb.tb_frame.f_code.co_filename in own:
        tb = tb.tb_next
    return tb


def _run_script(path: str) -> None:
    """Run a script as `python path` does: in a fresh `__main__` module whose `__file__`
    (and code filename) is the absolute path, with the script's directory first on
    `sys.path`. A directory or zip file is run by its `__main__.py`, through runpy."""
    abspath = os.path.abspath(path)
    sys.path[0] = os.path.dirname(os.path.realpath(path))
    if os.path.isdir(abspath) or zipfile.is_zipfile(abspath):
        sys.path[0] = abspath
        runpy.run_path(abspath, run_name="__main__")
        return
    with io.open_code(abspath) as file:
        source = file.read()
    # dont_inherit: this file's `from __future__` imports are not the script's.
    code = compile(source, abspath, "exec", dont_inherit=True)
    module = types.ModuleType("__main__")
    module.__dict__.update(
        __file__=abspath,
        __cached__=None,
        __builtins__=builtins,
        __loader__=importlib.machinery.SourceFileLoader("__main__", abspath),
    )
    sys.modules["__main__"] = module
    exec(code, module.__dict__)  # noqa: S102  (running the program is the point)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, install the policy and run the program."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.module is not None and args.script:
        parser.error("give either a script or -m module, not both")
    if args.module is not None and not args.module:
        parser.error("argument -m: expected a module name")
    if args.module is None and not args.script:
        parser.error("a script or -m module is required")
    if args.module is None and not os.path.isfile(args.script[0]):
        # What `python missing.py` says, and its exit code (2).
        parser.error(f"can't open file {os.path.abspath(args.script[0])!r}: no such file")
    if args.debug:
        os.environ["PYTHONASYNCIODEBUG"] = "1"
    policy = _ConfiguredPolicy(
        debug=args.debug,
        slow_callback_duration=args.slow_callback_duration,
        watchdog=args.watchdog,
        stats=args.stats,
    )
    asyncio.set_event_loop_policy(policy)
    try:
        _run_program(args)
    finally:
        if policy.loops is not None:
            sys.stdout.flush()
            timed = args.debug or args.watchdog is not None
            sys.stderr.write(_stats_table(policy.loops, timed=timed))
            sys.stderr.flush()


def _run_program(args: argparse.Namespace) -> None:
    try:
        if args.module is not None:
            module, *module_args = args.module
            sys.argv = [module, *module_args]
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
            script, *script_args = args.script
            sys.argv = [script, *script_args]
            _run_script(script)
    except Exception as exc:  # noqa: BLE001  (any error of the program)
        # Report an error of the program as `python script.py` would: without
        # the frames of this launcher.
        traceback.print_exception(type(exc), exc, _strip_own_frames(exc.__traceback__))
        sys.exit(1)


if __name__ == "__main__":
    main()
