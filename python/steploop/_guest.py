"""Guest mode: run asyncio code inside any host event loop (modelled on Trio's guest mode).

The host gives one thing: a thread-safe "run this function soon, on your thread". steploop
then runs the asyncio program in steps on the host's thread:

    helper thread                              host thread
    -------------                              -----------
    wait until the loop has work:              ...the host's own events...
      select([loop.fileno()], [], [],
             loop.time_until_next())
    run_sync_soon_threadsafe(step)  ------->   step(): loop.run_once(0)
    wait for the step to end        <-------           (every callback runs here)
    ...and again

The helper only waits: `select` on the loop's epoll fd tells readiness without consuming any
event, and the step itself never blocks (`run_once(0)`). The two alternate strictly, so the
helper never touches the loop while a step runs. Work the host schedules on the loop between
steps (`call_soon`, `create_task`, `call_soon_threadsafe`) wakes the helper through the same fd.

When the program's task is done, the remaining tasks are cancelled, async generators and the
default executor are shut down (as `asyncio.run` does, still in steps), the helper thread
exits, the loop is closed, and `done_callback(task)` is called on the host's thread.
"""

from __future__ import annotations

import asyncio
import select
import threading
from asyncio.log import logger
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from ._host import host_delay
from ._loop import Loop

__all__ = ["GuestRun", "start_guest_run"]

_T = TypeVar("_T")


class GuestRun(Generic[_T]):
    """A guest run started by `start_guest_run`.

    ``loop`` is the guest's steploop loop and ``task`` the task that runs the coroutine.
    Both belong to the host's thread: from another thread, use
    ``loop.call_soon_threadsafe`` (``cancel()`` does).
    """

    def __init__(
        self,
        loop: Loop,
        task: asyncio.Task[_T],
        run_sync_soon_threadsafe: Callable[[Callable[[], object]], object],
        done_callback: Callable[[asyncio.Task[_T]], object],
    ) -> None:
        self.loop = loop
        self.task = task
        self._run_sync_soon_threadsafe = run_sync_soon_threadsafe
        self._done_callback = done_callback
        # Set by the host when the helper may look at the loop again (a step ended).
        self._resume = threading.Event()
        self._finished = False  # written by the host thread before `_resume` is set
        self._finalizer: asyncio.Task[None] | None = None
        self._helper = threading.Thread(
            target=self._wait_for_work, name=f"steploop-guest-{id(loop):x}", daemon=True
        )

    def cancel(self, msg: Any | None = None) -> None:
        """Cancel the guest's main task (from any thread). ``done_callback`` is then called
        with the cancelled task."""
        self.loop.call_soon_threadsafe(self.task.cancel, msg)

    def done(self) -> bool:
        """True once ``done_callback`` has been called: the loop is closed, the helper gone."""
        return self._finished

    def __repr__(self) -> str:
        state = "finished" if self._finished else "running"
        return f"<GuestRun {state} task={self.task!r}>"

    # --- helper thread -------------------------------------------------------------------

    def _wait_for_work(self) -> None:
        loop = self.loop
        fd = loop.fileno()
        try:
            while True:
                self._resume.wait()
                self._resume.clear()
                if self._finished:
                    return
                # Readiness only: `select` does not consume the epoll fd's events, the
                # step on the host's thread does.
                select.select([fd], [], [], host_delay(loop))
                self._run_sync_soon_threadsafe(self._step)
        except BaseException:  # noqa: BLE001  (a dead helper must say why)
            logger.exception("steploop guest run %r: the helper thread failed", self)

    # --- host thread ---------------------------------------------------------------------

    def _step(self) -> None:
        """One iteration of the guest loop, on the host's thread."""
        if self._finished:
            return
        try:
            self.loop.run_once(0)
        finally:
            # Even if a callback raised KeyboardInterrupt or SystemExit through run_once (it
            # then reaches the host), the run goes on: the task that raised is done.
            if self.task.done() and self._finalizer is None:
                self._finalizer = self.loop.create_task(_shutdown(self.loop, self.task))
            if self._finalizer is not None and self._finalizer.done():
                self._finish()
            else:
                self._resume.set()

    def _finish(self) -> None:
        self._finished = True
        self._resume.set()
        self._helper.join()
        loop = self.loop
        try:
            if self._finalizer is not None and not self._finalizer.cancelled():
                exc = self._finalizer.exception()
                if exc is not None:
                    loop.call_exception_handler(
                        {"message": "error while shutting down the guest loop", "exception": exc}
                    )
        finally:
            loop.close()
        self._done_callback(self.task)


async def _shutdown(loop: Loop, main: asyncio.Task[Any]) -> None:
    """What `asyncio.run` does after the main coroutine: cancel the remaining tasks, shut
    async generators and the default executor down."""
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks(loop) if t is not current and t is not main]
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for task, result in zip(tasks, results):
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during guest run shutdown",
                    "exception": result,
                    "task": task,
                }
            )
    await loop.shutdown_asyncgens()
    await loop.shutdown_default_executor()


def start_guest_run(
    coro: Coroutine[Any, Any, _T],
    *,
    run_sync_soon_threadsafe: Callable[[Callable[[], object]], object],
    done_callback: Callable[[asyncio.Task[_T]], object],
    loop_factory: Callable[[], Loop] | None = None,
    debug: bool | None = None,
) -> GuestRun[_T]:
    """Run ``coro`` on a new steploop loop inside a host event loop; return at once.

    Call it on the host's thread. The host provides ``run_sync_soon_threadsafe(fn)``: called
    from a steploop helper thread, it must arrange for ``fn()`` to run soon on the host's
    thread (Tk: ``lambda fn: root.after(0, fn)``, as tkinter hands calls from other threads
    to the Tk thread while ``mainloop`` runs; Qt: a queued signal; GLib: ``GLib.idle_add``;
    anything else: a queue the host drains).
    Every callback of the asyncio program runs on the host's thread, one loop iteration per
    ``fn()``; the helper thread only waits for I/O and timers (``select`` on
    ``loop.fileno()``) and never runs Python code of the program.

    When the coroutine is done, the remaining tasks are cancelled, async generators and the
    default executor are shut down, the helper thread exits, the loop is closed, and
    ``done_callback(outcome)`` is called on the host's thread. ``outcome`` is the finished
    ``asyncio.Task``: ``outcome.result()`` returns the coroutine's value or raises its
    exception (``CancelledError`` if it was cancelled), ``outcome.exception()`` returns the
    exception or None, ``outcome.cancelled()`` tells whether it was cancelled.

    A minimal host, built on a queue::

        import queue, steploop

        todo = queue.Queue()
        outcomes = []
        steploop.start_guest_run(
            main(),
            run_sync_soon_threadsafe=todo.put,
            done_callback=outcomes.append,
        )
        while not outcomes:
            todo.get()()          # the host's loop: run what it was given
        print(outcomes[0].result())

    ``loop_factory`` makes the loop (default: ``steploop.new_event_loop``); ``debug`` sets
    its debug mode. The returned `GuestRun` has the ``loop``, the ``task`` and ``cancel()``.
    """
    loop = loop_factory() if loop_factory is not None else Loop()
    if debug is not None:
        loop.set_debug(debug)
    task = loop.create_task(coro)
    run = GuestRun(loop, task, run_sync_soon_threadsafe, done_callback)
    run._resume.set()  # the task's first step is ready: look at once
    run._helper.start()
    return run
