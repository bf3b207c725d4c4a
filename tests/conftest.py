"""Fixtures shared by the behaviour tests: every test runs on asyncio and on steploop.

`loop` is a fresh event loop of each kind (test ids end in `[asyncio]` / `[steploop]`, so
`pytest -k asyncio` runs the reference half only). If steploop cannot be imported, the
steploop half *fails*: a broken build must not look like a green run.

Teardown closes the loop and fails the test if the loop's exception handler was called
and the test did not ask for those calls: a test that expects them requests the
`loop_errors` fixture, a list of the context dicts the handler received, and checks it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from loop_helpers import new_loop_of_kind

LOOP_KINDS = ["asyncio", "steploop"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "steploop_only: tests of steploop's own API (forced iteration), not of asyncio"
    )


@pytest.fixture(params=LOOP_KINDS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    """'asyncio' or 'steploop': the implementation this test runs on."""
    kind: str = request.param
    return kind


@pytest.fixture
def new_loop(loop_kind: str) -> Iterator[Callable[[], asyncio.AbstractEventLoop]]:
    """A factory of loops of the test's kind; loops still open at teardown are closed."""
    made: list[asyncio.AbstractEventLoop] = []

    def make() -> asyncio.AbstractEventLoop:
        loop = new_loop_of_kind(loop_kind)
        made.append(loop)
        return loop

    yield make
    for loop in made:
        if not loop.is_closed():
            loop.close()


@pytest.fixture
def loop_errors() -> list[dict[str, Any]]:
    """Contexts passed to the `loop` fixture's exception handler; the test checks them."""
    return []


@pytest.fixture
def loop(
    request: pytest.FixtureRequest, new_loop: Callable[[], asyncio.AbstractEventLoop]
) -> Iterator[asyncio.AbstractEventLoop]:
    """A fresh loop whose exception handler records every call (see module doc)."""
    loop = new_loop()
    expected = "loop_errors" in request.fixturenames
    errors: list[dict[str, Any]] = request.getfixturevalue("loop_errors") if expected else []

    def record(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        errors.append(context)

    loop.set_exception_handler(record)
    yield loop
    asyncio.set_event_loop(None)
    if not loop.is_closed():
        loop.close()
    if errors and not expected:
        pytest.fail(
            "unexpected exception handler call(s):\n"
            + "\n".join(f"  {context!r}" for context in errors),
            pytrace=False,
        )
