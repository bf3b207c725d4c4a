"""Forced iteration with steploop's public API (runs on steploop only).

`loop.run_once(timeout)` runs exactly one iteration of the loop, also when the
loop is not running, and returns a `StepReport` saying what the step did.
`loop.run_until_idle()` steps with timeout 0 until nothing is ready or due.
`loop.time_until_next()` says when a step would have work: 0.0 if a callback is
ready, the seconds to the next timer, or None if nothing is scheduled.

    python examples/python/demo_forced_iteration.py
"""

import asyncio

import steploop


def show(step: int, report: steploop.StepReport) -> None:
    deadline = report.next_deadline
    next_in = "None" if deadline is None else f"+{deadline - loop.time():.3f}s"
    print(
        f"step {step}: callbacks={report.callbacks} timers={report.timers}"
        f" io_events={report.io_events} pending={report.pending}"
        f" next_deadline={next_in}"
        f" poll_time={report.poll_time * 1e3:.3f}ms run_time={report.run_time * 1e3:.3f}ms"
    )


async def worker(name: str, steps: int) -> str:
    for i in range(steps):
        print(f"  {name}: шаг {i}")
        await asyncio.sleep(0)
    return name


loop = steploop.new_event_loop()
try:
    loop.call_soon(print, "  call_soon: A")
    loop.call_soon(print, "  call_soon: B")
    loop.call_later(0.05, print, "  call_later(0.05)")
    loop.call_at(loop.time() + 0.1, print, "  call_at(time() + 0.1)")
    task = loop.create_task(worker("task", 3))

    print(f"time_until_next() = {loop.time_until_next()}")
    step = 0
    # Two steps that never block: the ready callbacks, then what they scheduled.
    for _ in range(2):
        step += 1
        show(step, loop.run_once(0))

    # Finish everything that is ready without waiting for the timers.
    print(f"run_until_idle() = {loop.run_until_idle()} steps")

    # Now only the two timers are left: each run_once waits for the next one
    # (the timeout is an upper bound on the wait).
    while (wait := loop.time_until_next()) is not None:
        print(f"time_until_next() = {wait:.3f}s")
        step += 1
        show(step, loop.run_once(1.0))

    print(f"time_until_next() = {loop.time_until_next()}")
    print(f"task.result() = {task.result()!r}")
finally:
    loop.close()
