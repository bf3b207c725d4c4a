"""Point test modules that build asyncio's loops themselves at the loop under test.

Most of test_asyncio gets its loop from ``asyncio.new_event_loop()`` / ``asyncio.Runner``
(``IsolatedAsyncioTestCase``), which the policy patch in ``_child.py`` redirects to steploop.
Some modules construct a specific loop class instead; the binders here rebind those, for both
``--loop steploop`` and ``--loop asyncio`` (where the factory is asyncio's default loop class),
so both runs execute the same test ids on the loop under test.

Not rebound (white-box by design, they stay on asyncio's own loop whatever --loop says):
``test_utils.TestCase.new_test_loop`` (``TestLoop``, a virtual-clock ``BaseEventLoop`` subclass
driven through its private ``_run_once``; most of test_tasks and test_futures use it) and
tests that mock a loop object outright.
"""

from __future__ import annotations

import types
import unittest
from collections.abc import Callable
from typing import Any

import scope

LoopFactory = Callable[[], Any]


def _resolve(module: types.ModuleType, dotted: str) -> Any:
    obj: Any = module
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def bind_event_loop_tests(module: types.ModuleType, factory: LoopFactory) -> None:
    """test_events: replace Select/Poll/EPoll/Kqueue/ProactorEventLoopTests (each testing one
    of asyncio's selector loops) by one class with the same mixins bound to our loop."""
    binding = scope.LOOP_BINDINGS[module.__name__.removeprefix(scope.ID_PREFIX)]
    for name in binding.replaced:
        if hasattr(module, name):
            delattr(module, name)
    bases = tuple(_resolve(module, dotted) for dotted in binding.mixins)

    def create_event_loop(self: unittest.TestCase) -> Any:
        return factory()

    cls = type(binding.name, bases, {"create_event_loop": create_event_loop})
    cls.__module__ = module.__name__
    cls.__qualname__ = binding.name
    setattr(module, binding.name, cls)


def bind_runner_tests(module: types.ModuleType, factory: LoopFactory) -> None:
    """test_runners: ``BaseTest.new_loop`` builds a bare ``asyncio.BaseEventLoop`` with a mocked
    ``_selector``/``_process_events`` and a fake ``shutdown_asyncgens`` that sets
    ``loop.shutdown_ag_run`` (checked in tearDown). Build our loop instead, with a
    ``shutdown_asyncgens`` that sets the flag and then really shuts the generators down."""

    def new_loop(self: unittest.TestCase) -> Any:
        loop = factory()
        loop.shutdown_ag_run = False
        original = loop.shutdown_asyncgens

        async def shutdown_asyncgens() -> None:
            loop.shutdown_ag_run = True
            await original()

        loop.shutdown_asyncgens = shutdown_asyncgens
        return loop

    module.BaseTest.new_loop = new_loop


def bind_pep492_tests(module: types.ModuleType, factory: LoopFactory) -> None:
    """test_pep492: ``BaseTest.setUp`` builds a bare ``asyncio.BaseEventLoop`` with a mocked
    selector; the tests only call ``run_until_complete``/``create_task``/``set_debug`` on it."""
    test_case_cls = module.test_utils.TestCase

    def set_up(self: Any) -> None:
        test_case_cls.setUp(self)
        self.loop = factory()
        self.set_event_loop(self.loop)

    module.BaseTest.setUp = set_up


def bind_plain_test_loop(module: types.ModuleType, factory: LoopFactory) -> None:
    """``test_utils.TestCase.new_test_loop()`` *without* a time generator returns a ``TestLoop``
    whose clock never moves; tests that call it that way use it as a plain loop. Give them our
    loop. ``new_test_loop(gen)`` (virtual clock driven by ``gen``) keeps asyncio's TestLoop, and
    so do the white-box tests listed in ``scope.KEEP_TEST_LOOP``."""
    test_case_cls = module.test_utils.TestCase
    original = test_case_cls.new_test_loop
    short = module.__name__.removeprefix(scope.ID_PREFIX)

    def new_test_loop(self: Any, gen: Any = None) -> Any:
        if gen is not None or scope.keeps_test_loop(
            short, type(self).__name__, self._testMethodName
        ):
            return original(self, gen)
        loop = factory()
        self.set_event_loop(loop)
        return loop

    test_case_cls.new_test_loop = new_test_loop


# module -> binder. Issue 5: add modules here as they enter scope.MODULES.
BINDERS: dict[str, Callable[[types.ModuleType, LoopFactory], None]] = {
    "test_events": bind_event_loop_tests,
    "test_sock_lowlevel": bind_event_loop_tests,  # issue 5
    "test_sendfile": bind_event_loop_tests,  # issue 5
    "test_runners": bind_runner_tests,
    "test_pep492": bind_pep492_tests,
    "test_futures": bind_plain_test_loop,
    "test_tasks": bind_plain_test_loop,
}


def bind(module: types.ModuleType, short_name: str, factory: LoopFactory) -> None:
    binder = BINDERS.get(short_name)
    if binder is not None:
        binder(module, factory)
