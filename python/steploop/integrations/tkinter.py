"""Drive steploop from Tk's ``mainloop``: asyncio code and a Tk GUI on one thread.

No helper thread and no polling. Tk watches the loop's fd (``createfilehandler`` on
``loop.fileno()``, readable when an iteration would have I/O or work scheduled from outside),
and a Tk timer (``after``) waits for the loop's next timer (``loop.time_until_next()``).
Either runs one non-blocking iteration, ``loop.run_once(0)``, then sets the timer again::

    import asyncio, tkinter
    from steploop.integrations import tkinter as steploop_tk

    async def main(label):
        for n in range(10):
            label["text"] = str(n)
            await asyncio.sleep(1)      # Tk stays responsive meanwhile
        return "done"

    root = tkinter.Tk()
    label = tkinter.Label(root)
    label.pack()
    print(steploop_tk.run(root, main(label)))

`run` is the whole program's entry point (it owns the loop, like ``asyncio.run``);
`install` attaches an existing loop to a Tk root and leaves ``mainloop`` to the caller.
Everything here must be called on the thread that created the Tk root.
"""

from __future__ import annotations

import asyncio
import math
import tkinter
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from .._host import host_delay
from .._loop import Loop

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["TkDriver", "install", "run"]

_T = TypeVar("_T")


class TkDriver:
    """A steploop loop driven by a Tk interpreter's event loop (made by `install`).

    While installed, every time the loop has work Tk runs one iteration of it,
    ``loop.run_once(0)``, from its own event loop: ``mainloop``, ``wait_window``,
    ``update`` all drive it. A callback of the loop may itself call ``root.update()``: the
    driver does not step the loop from inside its own step.
    """

    def __init__(self, root: tkinter.Misc, loop: Loop) -> None:
        if loop.is_closed():
            raise RuntimeError("Event loop is closed")
        self.root = root
        self.loop = loop
        self._fd = loop.fileno()
        self._watching = False  # is the file handler registered?
        self._timer: str | None = None  # the pending `after` id
        self._tick = root.register(self._on_timer)  # one Tcl command for every timer
        self._installed = True
        self._schedule()

    def uninstall(self) -> None:
        """Stop driving the loop (idempotent). The loop itself stays open."""
        if not self._installed:
            return
        self._installed = False
        try:
            self._cancel_timer()
            self._unwatch()
            self.root.deletecommand(self._tick)
        except tkinter.TclError:
            pass  # the Tk interpreter is already gone

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.uninstall()

    def __repr__(self) -> str:
        state = "installed" if self._installed else "uninstalled"
        return f"<TkDriver {state} loop={self.loop!r}>"

    # --- Tk callbacks --------------------------------------------------------------------

    def _on_readable(self, _fd: int, _mask: int) -> None:
        self._step()

    def _on_timer(self) -> None:
        self._timer = None
        self._step()

    def _step(self) -> None:
        loop = self.loop
        if not self._installed or loop.is_closed():
            return
        if loop.is_running():
            # A callback of the loop runs Tk's event loop (root.update()). Stepping here would
            # nest; and a readable fd left unserved would make update() spin. Stand down: the
            # step that is running re-arms both when it ends.
            self._cancel_timer()
            self._unwatch()
            return
        try:
            loop.run_once(0)
        finally:
            if self._installed and not loop.is_closed():
                self._schedule()

    # --- arming --------------------------------------------------------------------------

    def _schedule(self) -> None:
        """Wake up when the loop has work: its fd for I/O and outside wake-ups, a Tk timer
        for its next timer (0 ms if callbacks are ready now)."""
        if not self._watching:
            self.root.tk.createfilehandler(self._fd, tkinter.READABLE, self._on_readable)
            self._watching = True
        self._cancel_timer()
        delay = host_delay(self.loop)
        if delay is None:
            return  # nothing scheduled: only the fd can bring work
        ms = math.ceil(delay * 1000) if delay > 0 else 0
        self._timer = self.root.tk.call("after", ms, self._tick)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self.root.tk.call("after", "cancel", self._timer)
            self._timer = None

    def _unwatch(self) -> None:
        if self._watching:
            self.root.tk.deletefilehandler(self._fd)
            self._watching = False


def install(root: tkinter.Misc, loop: Loop) -> TkDriver:
    """Drive ``loop`` from ``root``'s Tk event loop until ``uninstall()``; return the driver.

    The caller runs ``root.mainloop()`` and schedules work on the loop as usual::

        loop = steploop.new_event_loop()
        driver = steploop_tk.install(root, loop)
        task = loop.create_task(poll_server(label))   # runs while Tk's mainloop runs
        button = tkinter.Button(root, text="Ping",
                                command=lambda: loop.create_task(ping(label)))
        root.mainloop()
        driver.uninstall()
        loop.close()

    It can also be used as a context manager (``with install(root, loop): ...``).
    """
    return TkDriver(root, loop)


def run(root: tkinter.Misc, coro: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T:
    """Run Tk's ``mainloop`` with ``coro`` on a new steploop loop; return its result.

    ``mainloop`` ends when the coroutine is done (``root.quit()``; the window stays, destroy
    it if you are done with it) or when the window is closed, which cancels the coroutine.
    Like ``asyncio.run``, the remaining tasks are then cancelled, async generators and the
    default executor shut down, and the loop closed. The coroutine's exception, or
    ``CancelledError`` if it was cancelled, is raised.

    Example: see the module's documentation and ``examples/python/tk_counter.py``.
    """
    loop = Loop()
    if debug is not None:
        loop.set_debug(debug)
    try:
        task = loop.create_task(coro)
        task.add_done_callback(lambda _: root.quit())
        with TkDriver(root, loop):
            root.mainloop()
        if not task.done():
            # The window was closed (or mainloop quit by someone else): cancel and let the
            # coroutine clean up, without Tk.
            task.cancel()
            loop.run_until_complete(asyncio.wait([task]))
        return task.result()
    finally:
        _close(loop)


def _close(loop: Loop) -> None:
    """What asyncio.run does when the main coroutine is done."""
    try:
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                loop.call_exception_handler(
                    {
                        "message": "unhandled exception during steploop_tk.run() shutdown",
                        "exception": task.exception(),
                        "task": task,
                    }
                )
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()
