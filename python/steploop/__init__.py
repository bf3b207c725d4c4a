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

Beyond that (see docs/forced-iteration.md): `start_guest_run` runs asyncio code inside any
host loop, `steploop.integrations.tkinter` inside Tk's mainloop, `steploop.testing` has a
virtual-clock loop and a pytest plugin, and `python -m steploop` runs any program on steploop.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._api import EventLoopPolicy, new_event_loop, run
    from ._guest import GuestRun, start_guest_run
    from ._loop import Loop
    from ._steploop import Handle, StepReport, TimerHandle, __version__

__all__ = [
    "EventLoopPolicy",
    "GuestRun",
    "Handle",
    "Loop",
    "StepReport",
    "TimerHandle",
    "__version__",
    "new_event_loop",
    "run",
    "start_guest_run",
]

# Where each public name is defined. They are imported on first use: the pytest plugin
# (`steploop.pytest_plugin`) is loaded by every pytest run once steploop is installed, and
# importing it must not load asyncio and the native extension.
_SOURCES = {
    "EventLoopPolicy": "._api",
    "new_event_loop": "._api",
    "run": "._api",
    "GuestRun": "._guest",
    "start_guest_run": "._guest",
    "Loop": "._loop",
    "Handle": "._steploop",
    "StepReport": "._steploop",
    "TimerHandle": "._steploop",
    "__version__": "._steploop",
}


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(source, __name__), name)
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
