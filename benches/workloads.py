"""Benchmark workloads: one workload, one loop, one sample per process.

Usage::

    python benches/workloads.py LOOP WORKLOAD SIZE      # prints one JSON object
    python benches/workloads.py --probe LOOP            # prints the loop's version
    python benches/workloads.py --list                  # prints the workload table as JSON

``benches/run.py`` starts this script once per sample, so every sample runs in a fresh
interpreter: no warm caches, freelists or leftover threads from another loop. Inside the
process the workload runs once on a tenth of its size (warm-up), then once timed.

Each workload is a function ``fn(new_loop, n) -> (ops, seconds, variant)`` that takes a loop
*factory*, so adding a loop means adding one line to ``LOOPS`` (and one to ``UVICORN_LOOPS``).
The uvicorn workloads are *external*: the loop runs in a uvicorn server process that the
workload starts, so their ``fn`` gets the loop's name instead, ``n`` is the length of the load
in seconds, and they warm up themselves. A workload that cannot run here (wrk is missing)
raises ``Skipped``: the row says why, and the run goes on. ``variant`` names the API the
workload used on that loop when loops differ (the forced-iteration workloads call
``run_once(0)`` where a loop has it and the closest equivalent elsewhere).

This module imports only the standard library at the top: run.py imports it for the table
of workloads without importing any loop.
"""

from __future__ import annotations

import asyncio
import http.client
import importlib
import importlib.util
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ECHO_CLIENT = os.path.join(HERE, "echo_client.py")
ASGI_APP = "asgi_app:app"  # benches/asgi_app.py

#: loop name -> (module to import, factory attribute). The factory is ``module.new_event_loop``
#: except for asyncio itself.
LOOPS: dict[str, str] = {
    "asyncio": "asyncio",
    "uvloop": "uvloop",
    "rloop": "rloop",
    "steploop": "steploop",
}

#: loop name -> uvicorn's ``--loop``: a name uvicorn knows, or the import string of a factory
#: (uvicorn calls an import string's target to make the loop, as ``asyncio.run`` would).
UVICORN_LOOPS: dict[str, str] = {
    "asyncio": "asyncio",
    "uvloop": "uvloop",
    "rloop": "rloop:new_event_loop",
    "steploop": "steploop:new_event_loop",
}

LoopFactory = Callable[[], asyncio.AbstractEventLoop]
Result = tuple[int, float, str]

perf = time.perf_counter


def noop() -> None:
    pass


class Skipped(Exception):
    """The workload cannot run on this machine (a tool it needs is missing): not a failure."""


# --------------------------------------------------------------------------- scheduling


def call_soon_chain(new_loop: LoopFactory, n: int) -> Result:
    """n callbacks, each scheduling the next with call_soon; the last one stops the loop."""
    loop = new_loop()
    left = n

    def step() -> None:
        nonlocal left
        left -= 1
        if left:
            loop.call_soon(step)
        else:
            loop.stop()

    loop.call_soon(step)
    t0 = perf()
    loop.run_forever()
    dt = perf() - t0
    loop.close()
    return n, dt, ""


def call_soon_fanout(new_loop: LoopFactory, n: int) -> Result:
    """100 tasks; each round a task schedules 10 call_soon callbacks and yields."""
    tasks, fan = 100, 10
    rounds = max(1, n // (tasks * fan))

    async def worker(loop: asyncio.AbstractEventLoop) -> None:
        call_soon = loop.call_soon
        for _ in range(rounds):
            for _ in range(fan):
                call_soon(noop)
            await asyncio.sleep(0)

    async def main() -> float:
        loop = asyncio.get_running_loop()
        t0 = perf()
        await asyncio.gather(*[worker(loop) for _ in range(tasks)])
        return perf() - t0

    return tasks * rounds * fan, _run(new_loop, main()), ""


def _sleep0(new_loop: LoopFactory, n: int, tasks: int) -> Result:
    rounds = max(1, n // tasks)

    async def worker() -> None:
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def main() -> float:
        t0 = perf()
        await asyncio.gather(*[worker() for _ in range(tasks)])
        return perf() - t0

    return tasks * rounds, _run(new_loop, main()), ""


def sleep0_100(new_loop: LoopFactory, n: int) -> Result:
    """100 tasks, each looping on ``await asyncio.sleep(0)``; ops = task switches."""
    return _sleep0(new_loop, n, 100)


def sleep0_10k(new_loop: LoopFactory, n: int) -> Result:
    """10 000 tasks, each looping on ``await asyncio.sleep(0)``; ops = task switches."""
    return _sleep0(new_loop, n, 10_000)


def spawn_gather(new_loop: LoopFactory, n: int) -> Result:
    """create_task of a trivial coroutine, gathered in batches of 1000; ops = tasks."""
    batch = min(1000, n)
    batches = max(1, n // batch)

    async def child() -> int:
        return 1

    async def main() -> float:
        loop = asyncio.get_running_loop()
        t0 = perf()
        for _ in range(batches):
            await asyncio.gather(*[loop.create_task(child()) for _ in range(batch)])
        return perf() - t0

    return batch * batches, _run(new_loop, main()), ""


def timers_fire(new_loop: LoopFactory, n: int) -> Result:
    """n call_later timers with deadlines spread over 1 ms, all of which fire."""
    loop = new_loop()
    left = n

    def fired() -> None:
        nonlocal left
        left -= 1
        if not left:
            loop.stop()

    def start() -> None:
        call_later = loop.call_later
        for i in range(n):
            call_later((i * 7919 % 1000) * 1e-6, fired)

    loop.call_soon(start)
    t0 = perf()
    loop.run_forever()
    dt = perf() - t0
    loop.close()
    return n, dt, ""


def timers_cancel(new_loop: LoopFactory, n: int) -> Result:
    """call_later(10 s) then cancel, in batches of 1000 with a loop iteration in between."""
    batch = min(1000, n)
    batches = max(1, n // batch)

    async def main() -> float:
        loop = asyncio.get_running_loop()
        call_later = loop.call_later
        t0 = perf()
        for _ in range(batches):
            handles = [call_later(10.0 + i * 1e-6, noop) for i in range(batch)]
            for h in handles:
                h.cancel()
            await asyncio.sleep(0)
        return perf() - t0

    return batch * batches, _run(new_loop, main()), ""


def call_soon_threadsafe(new_loop: LoopFactory, n: int) -> Result:
    """Another thread calls call_soon_threadsafe n times; ops = callbacks delivered."""
    loop = new_loop()
    left = n
    t0 = 0.0

    def delivered() -> None:
        nonlocal left
        left -= 1
        if not left:
            loop.stop()

    def producer() -> None:
        cst = loop.call_soon_threadsafe
        for _ in range(n):
            cst(delivered)

    thread = threading.Thread(target=producer)

    def start() -> None:
        nonlocal t0
        t0 = perf()
        thread.start()

    loop.call_soon(start)
    loop.run_forever()
    dt = perf() - t0
    thread.join()
    loop.close()
    return n, dt, ""


def loop_create_close(new_loop: LoopFactory, n: int) -> Result:
    """new_event_loop() followed by close(); ops = loops."""
    t0 = perf()
    for _ in range(n):
        new_loop().close()
    return n, perf() - t0, ""


# ------------------------------------------------------------------------ forced iteration


def run_until_complete_sleep0(new_loop: LoopFactory, n: int) -> Result:
    """``loop.run_until_complete(asyncio.sleep(0))`` repeated; ops = calls."""
    loop = new_loop()
    ruc = loop.run_until_complete
    t0 = perf()
    for _ in range(n):
        ruc(asyncio.sleep(0))
    dt = perf() - t0
    loop.close()
    return n, dt, ""


def stop_run_forever(new_loop: LoopFactory, n: int) -> Result:
    """``loop.stop(); loop.run_forever()`` repeated on an idle loop (one iteration each)."""
    loop = new_loop()
    stop, run_forever = loop.stop, loop.run_forever
    t0 = perf()
    for _ in range(n):
        stop()
        run_forever()
    dt = perf() - t0
    loop.close()
    return n, dt, ""


def _one_step(loop: asyncio.AbstractEventLoop, ready: bool) -> tuple[Callable[[], Any], str]:
    """The cheapest public way to run exactly one iteration of ``loop`` without blocking.

    ``run_once(0)`` where the loop has it (steploop). asyncio's private ``_run_once()`` blocks
    when nothing is ready and no timer is due, so it is used only when callbacks are ready;
    otherwise, and on loops with neither, ``stop(); run_forever()``.
    """
    run_once = getattr(loop, "run_once", None)
    if run_once is not None:
        return (lambda: run_once(0)), "run_once(0)"
    if ready and isinstance(loop, asyncio.BaseEventLoop):
        return loop._run_once, "_run_once()"  # type: ignore[attr-defined]
    stop, run_forever = loop.stop, loop.run_forever

    def step() -> None:
        stop()
        run_forever()

    return step, "stop(); run_forever()"


def run_once_idle(new_loop: LoopFactory, n: int) -> Result:
    """One forced iteration of an idle loop; ops = iterations."""
    loop = new_loop()
    step, variant = _one_step(loop, ready=False)
    t0 = perf()
    for _ in range(n):
        step()
    dt = perf() - t0
    loop.close()
    return n, dt, variant


def run_once_100(new_loop: LoopFactory, n: int) -> Result:
    """Schedule 100 callbacks, then one forced iteration runs them; ops = iterations."""
    loop = new_loop()
    step, variant = _one_step(loop, ready=True)
    call_soon = loop.call_soon
    t0 = perf()
    for _ in range(n):
        for _ in range(100):
            call_soon(noop)
        step()
    dt = perf() - t0
    loop.close()
    return n, dt, variant


# ------------------------------------------------------------------------------------ I/O


def sock_pingpong(new_loop: LoopFactory, n: int) -> Result:
    """sock_sendall/sock_recv of 64 bytes back and forth over a socketpair; ops = round trips."""
    size = 64
    msg = b"p" * size

    async def recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        got = 0
        while got < size:
            data = await loop.sock_recv(sock, size - got)
            if not data:
                raise ConnectionError("peer closed")
            got += len(data)

    async def ping(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        for _ in range(n):
            await loop.sock_sendall(sock, msg)
            await recv_exactly(loop, sock)

    async def pong(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        for _ in range(n):
            await recv_exactly(loop, sock)
            await loop.sock_sendall(sock, msg)

    async def main() -> float:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        try:
            t0 = perf()
            await asyncio.gather(ping(loop, a), pong(loop, b))
            return perf() - t0
        finally:
            a.close()
            b.close()

    return n, _run(new_loop, main()), ""


class _EchoProtocol(asyncio.Protocol):
    transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


def _nodelay(sock: socket.socket | None) -> None:
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _echo_server(mode: str, failed: asyncio.Future[None]) -> tuple[int, Callable[[], Any]]:
    """Start an echo server on 127.0.0.1 (as MagicStack's vmbench does); return port, closer."""
    loop = asyncio.get_running_loop()

    def fail(exc: BaseException) -> None:
        if not failed.done():
            failed.set_exception(exc)

    if mode == "sock":
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(128)
        lsock.setblocking(False)

        async def serve_client(client: socket.socket) -> None:
            try:
                with client:
                    while True:
                        data = await loop.sock_recv(client, 102400)
                        if not data:
                            break
                        await loop.sock_sendall(client, data)
            except (ConnectionError, asyncio.CancelledError):
                pass
            except Exception as exc:  # noqa: BLE001 - any error fails the sample
                fail(exc)

        async def accept_forever() -> None:
            try:
                while True:
                    client, _ = await loop.sock_accept(lsock)
                    _nodelay(client)
                    client.setblocking(False)
                    loop.create_task(serve_client(client))
            except asyncio.CancelledError:
                pass
            except Exception as exc:  # noqa: BLE001 - any error fails the sample
                fail(exc)

        acceptor = loop.create_task(accept_forever())

        def close_sock() -> None:
            acceptor.cancel()
            lsock.close()

        return lsock.getsockname()[1], close_sock

    if mode == "streams":

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                _nodelay(writer.get_extra_info("socket"))
                while True:
                    data = await reader.read(102400)
                    if not data:
                        break
                    writer.write(data)
                writer.close()
            except (ConnectionError, asyncio.CancelledError):
                pass
            except Exception as exc:  # noqa: BLE001 - any error fails the sample
                fail(exc)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
    elif mode == "proto":
        server = await loop.create_server(_EchoProtocol, "127.0.0.1", 0)
    else:
        raise ValueError(f"unknown echo mode {mode!r}")
    return server.sockets[0].getsockname()[1], server.close


#: CPU time (user + system) the loop's process spent per echoed message in the last echo
#: workload, warm-up included: what the loop costs, whatever the client processes cost
#: (they share the machine's cores and bound the round-trip rate). Reported by ``main``.
last_server_cpu_per_msg: float | None = None


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _echo(new_loop: LoopFactory, n: int, mode: str, msize: int, conc: int) -> Result:
    """Round trips of ``msize`` bytes against an echo server on the loop under test.

    The client is another process (benches/echo_client.py: blocking sockets, ``conc``
    connections, one process each); it warms up, then times ``n`` round trips in all.
    """
    global last_server_cpu_per_msg
    warmup = max(2, n // conc // 10)
    cpu0 = _cpu_seconds()

    async def main() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        failed: asyncio.Future[None] = loop.create_future()

        def on_error(_loop: Any, context: dict[str, Any]) -> None:
            # Errors the loop reports instead of raising (a failing transport…) fail the sample.
            if not failed.done():
                message = context.get("message", "error reported to the exception handler")
                failed.set_exception(context.get("exception") or RuntimeError(message))

        loop.set_exception_handler(on_error)
        port, close = await _echo_server(mode, failed)
        cmd = [sys.executable, ECHO_CLIENT, "--port", str(port), "--msize", str(msize)]
        cmd += ["--requests", str(n), "--concurrency", str(conc), "--warmup", str(warmup)]
        cmd += ["--timeout", os.environ.get("BENCH_CLIENT_TIMEOUT", "15")]
        # A plain Popen, not loop.subprocess_exec: the loop under test may not support it.
        proc = subprocess.Popen(  # noqa: ASYNC220
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        done: asyncio.Future[tuple[str, str]] = loop.create_future()

        def client_done(out_err: tuple[str, str]) -> None:
            if not done.done():
                done.set_result(out_err)

        def wait_client() -> None:
            loop.call_soon_threadsafe(client_done, proc.communicate())

        waiter = threading.Thread(target=wait_client, daemon=True)
        waiter.start()
        try:
            waits: list[asyncio.Future[Any]] = [done, failed]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if failed.done():
                failed.result()
            out, err = done.result()
            if proc.returncode != 0:
                last = (err.strip().splitlines() or ["no output"])[-1]
                raise RuntimeError(f"echo client failed: {last}")
            report = json.loads(out)
            return int(report["requests"]), float(report["seconds"])
        finally:
            if proc.poll() is None:
                proc.kill()
            close()
            await asyncio.sleep(0)

    ops, seconds = _run(new_loop, main())
    last_server_cpu_per_msg = (_cpu_seconds() - cpu0) / (ops + warmup * conc)
    return ops, seconds, ""


def _make_echo(mode: str, kib: int, conc: int) -> Callable[[LoopFactory, int], Result]:
    def workload(new_loop: LoopFactory, n: int) -> Result:
        return _echo(new_loop, n, mode, kib * 1024, conc)

    what = {"sock": "sock_* API", "streams": "asyncio streams", "proto": "a Protocol"}[mode]
    conns = "1 client connection" if conc == 1 else f"{conc} client connections"
    workload.__doc__ = (
        f"Echo server using {what}; {kib} KiB messages, {conns} in another process; "
        "ops = round trips."
    )
    return workload


# -------------------------------------------------------------------------------- uvicorn


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _server_log(log: Any) -> str:
    log.seek(0)
    return str(log.read().decode(errors="replace"))


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Any, deadline: float) -> None:
    """Poll until the server accepts a connection (a short retry loop, no fixed sleep)."""
    end = time.monotonic() + deadline
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"uvicorn exited with {proc.returncode} before listening: "
                + _last_line(_server_log(log))
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > end:
                raise RuntimeError(f"uvicorn did not listen within {deadline:.0f} s") from None
            time.sleep(0.02)


def _running_loop(port: int) -> str:
    """The module.class of the loop the server runs on (benches/asgi_app.py's ``/loop``)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/loop")
        reply = conn.getresponse()
        body = reply.read().decode()
        if reply.status != 200:
            raise RuntimeError(f"GET /loop answered {reply.status}")
        return body
    finally:
        conn.close()


def _wrk(wrk: str, port: int, conns: int, seconds: int) -> tuple[int, float]:
    """Load the server with wrk (one thread, keep-alive); return (requests, seconds)."""
    cmd = [wrk, "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s"]
    cmd.append(f"http://127.0.0.1:{port}/")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    out = proc.stdout
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited with {proc.returncode}: {_last_line(proc.stderr + out)}")
    # Errors of any kind fail the sample: a correct keep-alive server gives none.
    for pattern in (r"Socket errors:[^\n]*", r"Non-2xx or 3xx responses:[^\n]*"):
        bad = re.search(pattern, out)
        if bad:
            raise RuntimeError(f"wrk: {bad.group(0).strip()}")
    done = re.search(r"^\s*(\d+) requests in ", out, re.MULTILINE)
    rate = re.search(r"^Requests/sec:\s*([0-9.]+)", out, re.MULTILINE)
    if not done or not rate or float(rate.group(1)) <= 0:
        raise RuntimeError(f"cannot read wrk's output: {out.strip()[-300:]!r}")
    requests = int(done.group(1))
    # wrk's own rate (its run time to the microsecond), as requests / seconds
    return requests, requests / float(rate.group(1))


def _uvicorn(loop_name: str, seconds: int, conns: int) -> Result:
    """uvicorn on the loop ``loop_name`` serving benches/asgi_app.py, loaded by wrk.

    One server process (``--workers 1``), started on a free port and polled until it accepts
    connections; a ``GET /loop`` checks that it runs on the right loop; then wrk loads it for
    1 s to warm up (unless ``seconds`` is 1, as with ``--quick``) and ``seconds`` timed; then
    SIGINT stops it. A server that exits with an error or logs a traceback fails the sample.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise Skipped("wrk not found (Debian package: apt-get install wrk)")
    if importlib.util.find_spec("uvicorn") is None:
        raise Skipped("uvicorn not installed (pip install -r benches/requirements.txt)")
    parser = "httptools" if importlib.util.find_spec("httptools") else "h11"
    port = _free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", ASGI_APP, "--app-dir", HERE,
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--loop", UVICORN_LOOPS[loop_name], "--http", parser, "--lifespan", "off",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "WEB_CONCURRENCY"}
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            _wait_listening(port, proc, log, 30.0)
            running = _running_loop(port)
            expected = "asyncio" if loop_name == "asyncio" else LOOPS[loop_name]
            if running.split(".")[0] != expected:
                raise RuntimeError(f"uvicorn runs on {running}, not on {loop_name}")
            if seconds > 1:
                _wrk(wrk, port, conns, 1)  # warm-up
            ops, dt = _wrk(wrk, port, conns, seconds)
            if proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {proc.returncode} during the load")
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                raise RuntimeError("uvicorn did not stop within 15 s of SIGINT") from None
            text = _server_log(log)
            if proc.returncode != 0 or "Traceback" in text:
                raise RuntimeError(f"uvicorn exited with {proc.returncode}: {_last_line(text)}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return ops, dt, f"--loop {UVICORN_LOOPS[loop_name]} --http {parser}"


def _make_uvicorn(conns: int) -> Callable[[str, int], Result]:
    def workload(loop_name: str, seconds: int) -> Result:
        return _uvicorn(loop_name, seconds, conns)

    workload.__doc__ = (
        "uvicorn (1 worker; httptools, or h11 where it is missing) serving a minimal ASGI app "
        f"on the loop, loaded by wrk -t1 -c{conns} (keep-alive); ops = requests answered."
    )
    return workload


def _run(new_loop: LoopFactory, coro: Any) -> Any:
    loop = new_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Workload:
    name: str
    group: str
    #: ``fn(new_loop, size)``; for an external workload ``fn(loop_name, seconds)``
    fn: Callable[[Any, int], Result]
    size: int  # ops per sample in a full run (seconds of load if external)
    quick: int  # the same with --quick
    #: the loop runs in a server process the workload starts (see the module's docstring)
    external: bool = False

    @property
    def unit(self) -> str:
        """What ``size`` counts: operations, or seconds of load."""
        return "s" if self.external else "ops"

    @property
    def description(self) -> str:
        return (self.fn.__doc__ or "").strip().splitlines()[0]


def _workloads() -> list[Workload]:
    w = [
        Workload("call_soon_chain", "scheduling", call_soon_chain, 1_000_000, 2000),
        Workload("call_soon_fanout", "scheduling", call_soon_fanout, 1_000_000, 2000),
        Workload("sleep0_100_tasks", "scheduling", sleep0_100, 300_000, 1000),
        Workload("sleep0_10k_tasks", "scheduling", sleep0_10k, 300_000, 10_000),
        Workload("spawn_gather", "scheduling", spawn_gather, 100_000, 1000),
        Workload("timers_fire", "scheduling", timers_fire, 200_000, 1000),
        Workload("timers_cancel", "scheduling", timers_cancel, 300_000, 1000),
        Workload("call_soon_threadsafe", "scheduling", call_soon_threadsafe, 200_000, 1000),
        Workload("loop_create_close", "scheduling", loop_create_close, 5000, 20),
        Workload("run_until_complete", "forced", run_until_complete_sleep0, 50_000, 200),
        Workload("stop_run_forever", "forced", stop_run_forever, 50_000, 200),
        Workload("run_once_idle", "forced", run_once_idle, 50_000, 200),
        Workload("run_once_100_ready", "forced", run_once_100, 10_000, 50),
        Workload("sock_pingpong", "io", sock_pingpong, 20_000, 100),
    ]
    requests = {1: 20_000, 10: 10_000, 100: 2000}
    for mode in ("sock", "streams", "proto"):
        for kib in (1, 10, 100):
            for conc in (1, 10):
                full = requests[kib] * (2 if conc > 1 else 1)
                w.append(
                    Workload(
                        f"echo_{mode}_{kib}k_c{conc}", "io", _make_echo(mode, kib, conc), full, 40
                    )
                )
    for conns in (10, 100):
        w.append(Workload(f"uvicorn_hello_c{conns}", "io", _make_uvicorn(conns), 5, 1, True))
    return w


WORKLOADS: dict[str, Workload] = {w.name: w for w in _workloads()}


# ---------------------------------------------------------------------------------- main


def loop_factory(name: str) -> tuple[LoopFactory, str]:
    """Import the loop ``name``; return its factory and version."""
    if name == "asyncio":
        return asyncio.new_event_loop, platform.python_version()
    module = importlib.import_module(LOOPS[name])
    version = getattr(module, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version

        version = dist_version(name)
    return module.new_event_loop, str(version)


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    if argv[:1] == ["--list"]:
        _emit({"workloads": [asdict(w) | {"fn": None, "unit": w.unit} for w in WORKLOADS.values()]})
        return 0
    if argv[:1] == ["--probe"] and len(argv) == 2:
        try:
            factory, version = loop_factory(argv[1])
            factory().close()
        except Exception as exc:  # noqa: BLE001 - reported: the loop is just unavailable
            _emit({"loop": argv[1], "ok": False, "error": f"{type(exc).__name__}: {exc}"})
            return 3
        _emit({"loop": argv[1], "ok": True, "version": version})
        return 0
    if len(argv) != 3:
        sys.stderr.write(__doc__ or "")
        return 2
    name, workload_name, size = argv[0], argv[1], int(argv[2])
    result: dict[str, Any] = {"loop": name, "workload": workload_name, "size": size}
    try:
        factory, _ = loop_factory(name)
        workload = WORKLOADS[workload_name]
        if workload.external:
            ops, seconds, variant = workload.fn(name, size)  # warms up itself
        else:
            workload.fn(factory, max(1, size // 10))  # warm-up
            ops, seconds, variant = workload.fn(factory, size)
    except Skipped as exc:
        result["skipped"] = str(exc)
        _emit(result)
        return 0
    except Exception as exc:  # noqa: BLE001 - reported per loop, never a crash of the run
        traceback.print_exc()
        result["error"] = f"{type(exc).__name__}: {exc}"
        _emit(result)
        return 1
    result.update(ops=ops, seconds=seconds, ops_per_sec=ops / seconds, variant=variant)
    if last_server_cpu_per_msg is not None:
        result["cpu_us_per_msg"] = last_server_cpu_per_msg * 1e6
    _emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
