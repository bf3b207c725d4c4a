"""Bad-input corpus: every public method of `asyncio.AbstractEventLoop` (the list comes from
`inspect.getmembers`, so no method is forgotten) called with wrong argument counts, wrong
types, None, huge, negative and NaN numbers, closed sockets and files, on an open and on a
closed loop. steploop must raise the *same exception type* as asyncio for every call (awaiting
what returns a coroutine), and never crash.

The calls run in a worker subprocess per loop kind (``python tests/test_bad_input.py --worker
KIND OUT``), which logs each call before making it: if the worker dies (segfault, abort), the
call it was making is reported as a crash of that method and the worker is restarted after it.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent

METHODS = sorted(
    name
    for name, member in inspect.getmembers(asyncio.AbstractEventLoop)
    if not name.startswith("_") and callable(member)
)


# ---------------------------------------------------------------- the corpus


def _noop(*args: Any) -> None:
    pass


def _closed_socket() -> socket.socket:
    s = socket.socket()
    s.close()
    return s


def _closed_file() -> Any:
    f = open(os.devnull, "rb")  # noqa: SIM115
    f.close()
    return f


# Bad values, by name; each is made fresh for every call.
BAD: dict[str, Callable[[], Any]] = {
    "None": lambda: None,
    "str": lambda: "\x00bad",
    "bytes": lambda: b"\x00bad",
    "zero": lambda: 0,
    "negative": lambda: -1,
    "huge": lambda: 2**64,
    "huge_negative": lambda: -(2**64),
    "float_huge": lambda: 1e308,
    "nan": lambda: math.nan,
    "inf": lambda: math.inf,
    "neg_inf": lambda: -math.inf,
    "object": object,
    "list": lambda: [1, 2],
    "dict": lambda: {"a": 1},
    "closed_socket": _closed_socket,
    "closed_file": _closed_file,
}
KW_BAD = ["None", "str", "negative", "nan", "object", "closed_socket"]


def _good(name: str, method: str, loop: asyncio.AbstractEventLoop) -> Any:
    """A plausible value for parameter `name`, so that one bad argument is tested alone."""
    if name in ("callback", "func", "handler"):
        return _noop
    if name == "protocol_factory":
        return asyncio.DatagramProtocol if "datagram" in method else asyncio.Protocol
    if name in ("delay", "when", "offset", "flags", "family", "proto", "type"):
        return 0
    if name in ("nbytes", "bufsize"):
        return 10
    if name == "buf":
        return bytearray(10)
    if name == "data":
        return b"x"
    if name == "host":
        return "127.0.0.1"
    if name == "port":
        return 1  # connection refused at once
    if name in ("address", "sockaddr"):
        return ("127.0.0.1", 1)
    if name == "sock":
        s = socket.socket()
        s.setblocking(False)
        return s
    if name in ("fd", "pipe"):
        return os.open(os.devnull, os.O_RDONLY)
    if name == "sig":
        return signal.SIGUSR2
    if name == "future":
        fut = loop.create_future() if not loop.is_closed() else None
        if fut is not None:
            fut.set_result(1)
        return fut
    if name == "coro":
        return asyncio.sleep(0)
    if name == "file":
        return open(os.devnull, "rb")
    if name == "enabled":
        return False
    if name == "context":
        return {"message": "bad-input corpus"}
    if name == "path":
        return "/nonexistent/steploop-bad-input.sock"
    if name == "cmd":
        return "true"
    return None  # executor, factory, count, local_addr, transport, protocol, sslcontext...


def cases(method: str) -> Iterator[tuple[str, Callable[[asyncio.AbstractEventLoop], Any]]]:
    """(case id, function of the loop returning (args, kwargs)) for one method."""
    sig = inspect.signature(getattr(asyncio.AbstractEventLoop, method))
    params = [p for p in sig.parameters.values() if p.name != "self"]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    keyword = [p for p in params if p.kind == p.KEYWORD_ONLY]

    def good_args(loop: asyncio.AbstractEventLoop) -> list[Any]:
        return [_good(p.name, method, loop) for p in required]

    yield "no args", lambda loop: ((), {})
    yield "too many", lambda loop: ((None,) * (len(positional) + 5), {})
    yield "unknown keyword", lambda loop: (tuple(good_args(loop)), {"bogus_kw": 1})
    if not required:
        yield "plain", lambda loop: ((), {})
    for bad_name, bad in BAD.items():
        if required:
            yield f"all {bad_name}", lambda loop, bad=bad: (tuple(bad() for _ in required), {})
        for i, p in enumerate(positional):

            def one_bad(loop: asyncio.AbstractEventLoop, i: int = i, bad: Any = bad) -> Any:
                args = [_good(q.name, method, loop) for q in positional[: max(i, len(required))]]
                while len(args) <= i:
                    args.append(None)
                args[i] = bad()
                return tuple(args), {}

            yield f"{p.name}={bad_name}", one_bad
    for p in keyword:
        for bad_name in KW_BAD:

            def kw_bad(
                loop: asyncio.AbstractEventLoop, p: Any = p, bad_name: str = bad_name
            ) -> Any:
                return tuple(good_args(loop)), {p.name: BAD[bad_name]()}

            yield f"{p.name}=kw {bad_name}", kw_bad


# ---------------------------------------------------------------- the worker


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "asyncio":
        return asyncio.new_event_loop()
    import steploop

    loop: asyncio.AbstractEventLoop = steploop.new_event_loop()
    return loop


def _describe(exc: BaseException) -> str:
    return type(exc).__name__


def _call(kind: str, method: str, make: Any, closed: bool) -> str:
    loop = _new_loop(kind)
    loop.set_exception_handler(lambda loop, context: None)
    if closed:
        loop.close()
    else:
        loop.call_soon(loop.stop)  # so run_forever() returns
    args: Any = ()
    try:
        args, kwargs = make(loop)
        try:
            result = getattr(loop, method)(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001
            return _describe(exc)
        if inspect.isawaitable(result):
            if loop.is_closed() or loop.is_running():
                if inspect.iscoroutine(result):
                    result.close()
                return "ok (not awaited: loop closed)"
            try:
                loop.run_until_complete(asyncio.wait_for(result, 2))
            except BaseException as exc:  # noqa: BLE001
                return "awaited: " + _describe(exc)
            return "awaited: ok"
        return "ok"
    finally:
        for a in args if isinstance(args, tuple) else ():
            closable = isinstance(a, socket.socket) or hasattr(a, "read")
            if inspect.iscoroutine(a) or (closable and hasattr(a, "close")):
                a.close()
        if not loop.is_closed():
            if loop.is_running():
                loop.stop()
            else:
                try:
                    loop.run_until_complete(loop.shutdown_default_executor())
                except BaseException:  # noqa: BLE001,S110
                    pass
                loop.close()


def worker(kind: str, out_path: str, skip: set[str]) -> None:
    import logging
    import warnings

    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    with open(out_path, "a") as out:
        for method in METHODS:
            for closed in (False, True):
                for case_id, make in cases(method):
                    key = f"{method}|{'closed' if closed else 'open'}|{case_id}"
                    if key in skip:
                        continue
                    out.write(json.dumps({"start": key}) + "\n")
                    out.flush()
                    result = _call(kind, method, make, closed)
                    out.write(json.dumps({"key": key, "result": result}) + "\n")
                    out.flush()


def run_corpus(kind: str) -> dict[str, str]:
    """{call key: result} for one loop kind; crashes are results too ('CRASH ...')."""
    results: dict[str, str] = {}
    skip: set[str] = set()
    for _ in range(50):
        with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as out:
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", kind, out.name, json.dumps(sorted(skip))],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            started = None
            for line in out.read().splitlines():
                item = json.loads(line)
                if "start" in item:
                    started = item["start"]
                else:
                    results[item["key"]] = item["result"]
                    started = None
        if proc.returncode == 0:
            return results
        if started is None:  # died outside a call
            results["<worker>"] = f"CRASH rc={proc.returncode}: {proc.stderr[-2000:]}"
            return results
        results[started] = f"CRASH rc={proc.returncode}: {proc.stderr[-500:]}"
        skip.add(started)
    return results


# ---------------------------------------------------------------- the tests

# Divergences already reported (docs/NATIVE_REQUESTS.md): {method: (which calls, reason)}.
# The method's test still fails on any *other* divergence; once these calls agree with
# asyncio, the strict xfail turns the test red so the entry gets removed.
KNOWN: dict[str, tuple[Callable[[str], bool], str]] = {}

# Deliberate, documented differences (DESIGN.md, "Deliberate differences"): {method: (which
# calls, why)}. asyncio's `call_at` accepts any `when` and fails later, at the next heap
# comparison (often inside an unrelated call_later) or in `_run_once`; steploop's timer heap
# holds floats, so it raises the same TypeError at once, at the call that caused it.
DOCUMENTED: dict[str, tuple[Callable[[str], bool], str]] = {
    "call_at": (
        lambda k: "when=" in k or "|open|all " in k,
        "a non-number deadline is a TypeError at call time, not at the next comparison",
    ),
}


@pytest.fixture(scope="module")
def corpus() -> dict[str, dict[str, str]]:
    return {kind: run_corpus(kind) for kind in ("asyncio", "steploop")}


def test_worker_completed(corpus: dict[str, dict[str, str]]) -> None:
    for results in corpus.values():
        assert "<worker>" not in results, results["<worker>"]
    assert corpus["asyncio"].keys() == corpus["steploop"].keys()


@pytest.mark.parametrize("method", METHODS)
def test_same_exception_types_as_asyncio(
    request: pytest.FixtureRequest, corpus: dict[str, dict[str, str]], method: str
) -> None:
    ref, got = corpus["asyncio"], corpus["steploop"]
    keys = [k for k in ref if k.startswith(method + "|")]
    assert keys, f"no calls of {method}"
    crashes = {k: v for k, v in got.items() if k.startswith(method + "|") and v.startswith("CRASH")}
    assert not crashes, f"steploop crashed: {crashes}"
    diffs = {k: (ref[k], got.get(k)) for k in keys if ref[k] != got.get(k)}
    documented_calls, _why = DOCUMENTED.get(method, (lambda k: False, ""))
    for k in [k for k in diffs if documented_calls(k)]:
        _asyncio_result, steploop_result = diffs.pop(k)
        # The documented difference is about *when* TypeError is raised, never another type.
        assert steploop_result is not None and "TypeError" in steploop_result, (k, diffs)
    known_calls, reason = KNOWN.get(method, (lambda k: False, ""))
    known = {k: v for k, v in diffs.items() if known_calls(k)}
    new = {k: v for k, v in diffs.items() if k not in known}
    assert not new, "asyncio vs steploop:\n" + "\n".join(
        f"  {k}: {a} != {b}" for k, (a, b) in new.items()
    )
    if method in KNOWN:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"steploop bug: {reason}"))
        assert not known, "known divergences (asyncio != steploop):\n" + "\n".join(
            f"  {k}: {a} != {b}" for k, (a, b) in known.items()
        )


if __name__ == "__main__" and len(sys.argv) >= 4 and sys.argv[1] == "--worker":
    sys.path.insert(0, str(HERE))
    worker(sys.argv[2], sys.argv[3], set(json.loads(sys.argv[4]) if len(sys.argv) > 4 else []))
