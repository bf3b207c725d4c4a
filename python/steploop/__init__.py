"""steploop: an asyncio event loop written in Rust, with forced iteration as a public API.

Use it like uvloop::

    import asyncio, steploop
    asyncio.run(main(), loop_factory=steploop.new_event_loop)      # Python 3.12+
    with asyncio.Runner(loop_factory=steploop.new_event_loop) as r:  # Python 3.11+
        r.run(main())
    steploop.run(main())                                            # any version

and step it one iteration at a time::

    loop = steploop.new_event_loop()
    loop.call_soon(print, "hi")
    print(loop.run_once(timeout=0))   # StepReport(callbacks=1, ...)
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from ._loop import Loop
from ._steploop import Handle, StepReport, TimerHandle, __version__

__all__ = [
    "EventLoopPolicy",
    "Handle",
    "Loop",
    "StepReport",
    "TimerHandle",
    "__version__",
    "new_event_loop",
    "run",
]

_T = TypeVar("_T")


def new_event_loop(*, reentrant: bool = False) -> Loop:
    """Return a new steploop event loop.

    With ``reentrant=True`` the loop allows nested ``run_until_complete``/``run_once`` calls
    from inside its own callbacks (what ``nest_asyncio`` patches into asyncio).
    """
    return Loop(reentrant=reentrant)


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
    """Run a coroutine on a new steploop loop, like ``asyncio.run``, and return its result."""
    if asyncio.events._get_running_loop() is not None:
        # The same check and message as asyncio.run().
        raise RuntimeError("asyncio.run() cannot be called from a running event loop")
    with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)
