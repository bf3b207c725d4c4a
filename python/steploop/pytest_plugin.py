"""The steploop pytest plugin, registered as the ``pytest11`` entry point ``steploop``.

Installed with steploop, so loaded by every pytest run in that environment: importing this
module loads nothing but pytest (steploop's loops, asyncio and the native extension are
imported when a fixture or the option is used). ``-p no:steploop`` turns it off.

Fixtures::

    def test_timeout(virtual_loop):          # a fresh loop with a virtual clock
        async def main():
            async with asyncio.timeout(3600):
                await asyncio.sleep(7200)
        with pytest.raises(TimeoutError):
            virtual_loop.run_until_complete(main())   # instantly
        assert virtual_loop.time() == 3600.0

    def test_step(steploop_loop):            # a fresh steploop loop
        steploop_loop.call_soon(print, "hi")
        assert steploop_loop.run_once(0).callbacks == 1

Both loops are closed after the test as ``asyncio.run`` closes its loop (remaining tasks
cancelled, async generators and the default executor shut down). They are not set as the
current event loop.

Option ``--steploop`` (or ``steploop = true`` in the ini file): run the whole session on
steploop. It installs ``steploop.EventLoopPolicy()`` for the session, so every loop made
through the policy is a steploop loop: pytest-asyncio's (its ``event_loop_policy`` fixture
returns the policy in force unless a conftest overrides it), anyio's asyncio backend, and
``asyncio.run`` in the tests themselves. An existing pytest-asyncio suite runs unchanged::

    pytest --steploop
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import asyncio

    from ._loop import Loop
    from .testing import VirtualLoop

__all__ = ["steploop_loop", "virtual_loop"]

_OPTION_HELP = (
    "run the session's asyncio event loops on steploop (installs steploop.EventLoopPolicy: "
    "pytest-asyncio, anyio and asyncio.run then make steploop loops)"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("steploop")
    group.addoption("--steploop", action="store_true", default=None, help=_OPTION_HELP)
    parser.addini("steploop", type="bool", default=False, help=_OPTION_HELP)


def _enabled(config: pytest.Config) -> bool:
    option = config.getoption("steploop", default=None)
    return bool(option) if option is not None else bool(config.getini("steploop"))


# The policy in force before --steploop replaced it, restored at the end of the session.
_saved_policy: list[Any] = []


def pytest_configure(config: pytest.Config) -> None:
    if not _enabled(config):
        return
    import asyncio
    import warnings

    import steploop

    with warnings.catch_warnings():
        # Python 3.14 deprecates policies; they still work, and are what the plugins read.
        warnings.simplefilter("ignore", DeprecationWarning)
        _saved_policy.append(asyncio.get_event_loop_policy())
        asyncio.set_event_loop_policy(steploop.EventLoopPolicy())


def pytest_unconfigure(config: pytest.Config) -> None:
    if not _saved_policy:
        return
    import asyncio
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_event_loop_policy(_saved_policy.pop())


def pytest_report_header(config: pytest.Config) -> str | None:
    if not _enabled(config):
        return None
    import steploop

    return f"steploop: {steploop.__version__}, every asyncio loop is a steploop loop"


def _close(loop: asyncio.AbstractEventLoop) -> None:
    """Close a loop the fixture made, as asyncio.run closes its loop."""
    import asyncio

    if loop.is_closed():
        return
    try:
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


@pytest.fixture
def steploop_loop() -> Iterator[Loop]:
    """A fresh steploop loop (``steploop.new_event_loop()``), closed after the test."""
    import steploop

    loop = steploop.new_event_loop()
    try:
        yield loop
    finally:
        _close(loop)


@pytest.fixture
def virtual_loop() -> Iterator[VirtualLoop]:
    """A fresh steploop loop with a virtual clock starting at 0.0 and autojump on
    (``steploop.testing.new_virtual_loop()``), closed after the test."""
    from .testing import new_virtual_loop

    loop = new_virtual_loop()
    try:
        yield loop
    finally:
        _close(loop)
