"""The entry points: `new_event_loop`, `EventLoopPolicy` and `run`."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from ._loop import Loop

__all__ = ["EventLoopPolicy", "new_event_loop", "run"]

_T = TypeVar("_T")


def new_event_loop(*, reentrant: bool = False) -> Loop:
    """Return a new steploop event loop.

    With ``reentrant=True`` the loop allows nested ``run_until_complete``/``run_once`` calls
    from inside its own callbacks (what ``nest_asyncio`` patches into asyncio)::

        loop = steploop.new_event_loop(reentrant=True)

        async def outer():
            # A synchronous API that runs a coroutine to completion, called from a task:
            return loop.run_until_complete(asyncio.sleep(0, "inner"))

        assert loop.run_until_complete(outer()) == "inner"
        loop.close()

    On a default loop the nested call raises ``RuntimeError('This event loop is already
    running')``, as asyncio does.

    A reentrant loop also lets ``asyncio.run(coro)`` be called while it runs (the Jupyter
    case): the coroutine then runs to completion on that same loop. Creating the first
    reentrant loop wraps ``asyncio.run`` for that; with any other running loop, or none,
    ``asyncio.run`` behaves exactly as before (RuntimeError inside a running loop).
    """
    if reentrant:
        _install_nested_asyncio_run()
    return Loop(reentrant=reentrant)


_asyncio_run: Any = None


def _install_nested_asyncio_run() -> None:
    """Wrap ``asyncio.run`` once so that, inside a running *reentrant* steploop loop, it runs
    the coroutine on that loop instead of refusing."""
    global _asyncio_run
    if _asyncio_run is not None:
        return
    original = _asyncio_run = asyncio.run

    def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T:
        loop = asyncio.events._get_running_loop()
        if isinstance(loop, Loop) and loop._reentrant:
            if not asyncio.iscoroutine(main):
                raise ValueError(f"a coroutine was expected, got {main!r}")
            return loop.run_until_complete(main)
        return original(main, debug=debug)

    run.__doc__ = original.__doc__
    run.__wrapped__ = original  # type: ignore[attr-defined]
    asyncio.run = run
    asyncio.runners.run = run


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """An event loop policy whose loops are steploop loops::

    asyncio.set_event_loop_policy(steploop.EventLoopPolicy())
    asyncio.run(main())   # runs on steploop
    """

    def _loop_factory(self) -> Loop:  # type: ignore[override]
        return new_event_loop()

    def new_event_loop(self) -> Loop:
        return new_event_loop()


def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T:
    """Run a coroutine on a new steploop loop, like ``asyncio.run``, and return its result::

    async def main():
        await asyncio.sleep(0.01)
        return 42

    assert steploop.run(main()) == 42
    """
    if asyncio.events._get_running_loop() is not None:
        # The same check and message as asyncio.run().
        raise RuntimeError("asyncio.run() cannot be called from a running event loop")
    if sys.version_info >= (3, 11):
        with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
            return runner.run(main)
    return _run_310(main, debug)


def _run_310(main: Coroutine[Any, Any, _T], debug: bool | None) -> _T:
    """``asyncio.run`` as Python 3.10 does it (no ``asyncio.Runner`` there), on steploop."""
    if not asyncio.iscoroutine(main):
        raise ValueError(f"a coroutine was expected, got {main!r}")
    loop = new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            for task in tasks:
                if not task.cancelled() and task.exception() is not None:
                    loop.call_exception_handler(
                        {
                            "message": "unhandled exception during asyncio.run() shutdown",
                            "exception": task.exception(),
                            "task": task,
                        }
                    )
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
