"""Blocking echo client for the echo-server workloads (in the style of MagicStack's vmbench).

Usage::

    python benches/echo_client.py --port PORT [--msize BYTES] [--requests N]
                                  [--concurrency C] [--warmup W] [--timeout S]

Opens ``C`` connections to 127.0.0.1:PORT, one forked process each. Every connection sends a
message of ``msize`` bytes and waits until the whole echo is back before sending the next:
first ``W`` warm-up round trips, then, once all connections are warm (a barrier), ``N / C``
timed round trips. Prints ``{"requests": N, "seconds": S}`` where ``S`` runs from the first
timed send to the last timed echo, over all connections (CLOCK_MONOTONIC is shared by the
processes). Any socket error or a stall longer than ``--timeout`` exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import queue
import socket
import sys
import time
from typing import Any


def worker(
    port: int,
    msize: int,
    requests: int,
    warmup: int,
    timeout: float,
    barrier: Any,
    results: Any,
) -> tuple[float, float]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    msg = b"x" * msize
    buf = bytearray(msize)
    view = memoryview(buf)
    sendall, recv_into = sock.sendall, sock.recv_into

    def round_trips(count: int) -> None:
        for _ in range(count):
            sendall(msg)
            got = 0
            while got < msize:
                k = recv_into(view[got:])
                if not k:
                    raise ConnectionError("server closed the connection")
                got += k

    round_trips(warmup)
    if barrier is not None:
        barrier.wait(timeout)
    t0 = time.monotonic()
    round_trips(requests)
    t1 = time.monotonic()
    sock.close()
    if results is not None:
        results.put((t0, t1))
    return t0, t1


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--msize", type=int, default=1024)
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args(argv)
    conc = max(1, args.concurrency)
    per_conn = max(1, args.requests // conc)

    if conc == 1:
        spans = [worker(args.port, args.msize, per_conn, args.warmup, args.timeout, None, None)]
    else:
        ctx = mp.get_context("fork")
        barrier = ctx.Barrier(conc)
        results = ctx.Queue()
        procs = [
            ctx.Process(
                target=worker,
                args=(args.port, args.msize, per_conn, args.warmup, args.timeout, barrier, results),
            )
            for _ in range(conc)
        ]
        for p in procs:
            p.start()
        spans = []
        deadline = time.monotonic() + args.timeout * 4 + 60
        try:
            while len(spans) < conc:
                if time.monotonic() > deadline or any(p.exitcode not in (None, 0) for p in procs):
                    raise RuntimeError("an echo client connection failed")
                try:
                    spans.append(results.get(timeout=0.1))
                except queue.Empty:
                    pass
        finally:
            for p in procs:
                if p.is_alive() and len(spans) < conc:
                    p.kill()
                p.join()
    seconds = max(t1 for _, t1 in spans) - min(t0 for t0, _ in spans)
    json.dump({"requests": per_conn * conc, "seconds": seconds}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
