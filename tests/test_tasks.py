"""Tasks, task factories, executors and async generators (asyncio and steploop)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import re
import subprocess
import sys
import threading
from collections.abc import AsyncGenerator, Coroutine
from pathlib import Path
from typing import Any

import pytest
from loop_helpers import new_loop_of_kind, run_briefly, run_until_done


async def answer(value: Any = 42) -> Any:
    await asyncio.sleep(0)
    return value


# ---------------------------------------------------------------- tasks


def test_run_until_complete_coroutine(loop: asyncio.AbstractEventLoop) -> None:
    assert loop.run_until_complete(answer()) == 42


def test_run_until_complete_future_from_callback(loop: asyncio.AbstractEventLoop) -> None:
    fut = loop.create_future()
    assert isinstance(fut, asyncio.Future)
    assert fut.get_loop() is loop
    loop.call_later(0.001, fut.set_result, "ok")
    assert run_until_done(loop, fut) == "ok"


def test_task_names(loop: asyncio.AbstractEventLoop) -> None:
    named = loop.create_task(answer(), name="worker")
    unnamed = loop.create_task(answer())
    assert named.get_name() == "worker"
    assert re.fullmatch(r"Task-\d+", unnamed.get_name())
    unnamed.set_name("renamed")
    assert unnamed.get_name() == "renamed"
    assert "name='worker'" in repr(named)
    loop.run_until_complete(asyncio.gather(named, unnamed))


def test_create_task_returns_a_real_task(loop: asyncio.AbstractEventLoop) -> None:
    seen: list[Any] = []

    async def body() -> None:
        seen.append(asyncio.current_task())
        seen.append(asyncio.get_running_loop())

    task = loop.create_task(body())
    assert isinstance(task, asyncio.Task)
    assert task.get_loop() is loop
    loop.run_until_complete(task)
    assert seen == [task, loop]
    assert asyncio.all_tasks(loop) == set()


def test_task_cancellation(loop: asyncio.AbstractEventLoop) -> None:
    async def forever() -> None:
        await loop.create_future()

    task = loop.create_task(forever())
    run_briefly(loop)
    task.cancel("stop it")
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    assert task.cancelled()


def test_set_task_factory(loop: asyncio.AbstractEventLoop) -> None:
    made: list[asyncio.Task[Any]] = []

    def factory(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
    ) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        made.append(task)
        return task

    assert loop.get_task_factory() is None
    loop.set_task_factory(factory)  # type: ignore[arg-type]
    assert loop.get_task_factory() is factory
    task = loop.create_task(answer(), name="via factory")
    assert made == [task]
    assert task.get_name() == "via factory"
    # run_until_complete wraps a coroutine with create_task: the factory is used.
    assert loop.run_until_complete(answer(7)) == 7
    assert len(made) == 2
    loop.run_until_complete(task)
    loop.set_task_factory(None)
    assert loop.get_task_factory() is None
    loop.run_until_complete(answer())
    assert len(made) == 2
    with pytest.raises(TypeError, match="^task factory must be a callable or None$"):
        loop.set_task_factory(1)  # type: ignore[arg-type]


def test_gather_and_wait_for(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> list[Any]:
        results = await asyncio.gather(answer(1), answer(2), answer(3))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(loop.create_future(), 0.01)
        return list(results)

    assert loop.run_until_complete(main()) == [1, 2, 3]


def test_task_group_and_timeout(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> list[int]:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(answer(i)) for i in range(5)]
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await asyncio.sleep(10)
        return [t.result() for t in tasks]

    assert loop.run_until_complete(main()) == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------- executors


def test_run_in_executor_default(loop: asyncio.AbstractEventLoop) -> None:
    fut = loop.run_in_executor(None, threading.get_ident)
    assert isinstance(fut, asyncio.Future)
    thread_id = run_until_done(loop, fut)
    assert thread_id != threading.get_ident()
    assert run_until_done(loop, loop.run_in_executor(None, pow, 2, 10)) == 1024
    loop.run_until_complete(loop.shutdown_default_executor())


def test_run_in_executor_exception(loop: asyncio.AbstractEventLoop) -> None:
    def fail() -> None:
        raise ValueError("in thread")

    fut = loop.run_in_executor(None, fail)
    with pytest.raises(ValueError, match="^in thread$"):
        run_until_done(loop, fut)
    loop.run_until_complete(loop.shutdown_default_executor())


def test_run_in_executor_custom(loop: asyncio.AbstractEventLoop) -> None:
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="custom") as executor:
        name = run_until_done(
            loop, loop.run_in_executor(executor, lambda: threading.current_thread().name)
        )
    assert name.startswith("custom")


def test_set_default_executor(loop: asyncio.AbstractEventLoop) -> None:
    executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="default-ex")
    loop.set_default_executor(executor)
    name = run_until_done(loop, loop.run_in_executor(None, lambda: threading.current_thread().name))
    assert name.startswith("default-ex")
    loop.run_until_complete(loop.shutdown_default_executor())
    with pytest.raises(RuntimeError, match="^Executor shutdown has been called$"):
        loop.run_in_executor(None, pow, 2, 2)


def test_run_in_executor_closed_loop(loop: asyncio.AbstractEventLoop) -> None:
    loop.close()
    with pytest.raises(RuntimeError, match="^Event loop is closed$"):
        loop.run_in_executor(None, pow, 2, 2)


def test_to_thread(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> int:
        return await asyncio.to_thread(pow, 3, 3)

    assert loop.run_until_complete(main()) == 27
    loop.run_until_complete(loop.shutdown_default_executor())


# ---------------------------------------------------------------- async generators


def test_shutdown_asyncgens(loop: asyncio.AbstractEventLoop) -> None:
    closed: list[str] = []

    async def agen() -> AsyncGenerator[int, None]:
        try:
            yield 1
            yield 2
        finally:
            closed.append("finally")

    async def start() -> AsyncGenerator[int, None]:
        gen = agen()
        assert await gen.__anext__() == 1
        return gen

    gen = loop.run_until_complete(start())  # noqa: F841  (kept alive, not finished)
    assert closed == []
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert closed == ["finally"]


def test_asyncgen_finalizer_hook(loop: asyncio.AbstractEventLoop) -> None:
    # An unfinished async generator that is garbage-collected while the loop runs
    # is closed by the loop (its finalizer hook schedules aclose()).
    closed: list[str] = []

    async def agen() -> AsyncGenerator[int, None]:
        try:
            yield 1
            yield 2
        finally:
            closed.append("finally")

    async def main() -> None:
        gen = agen()
        await gen.__anext__()
        del gen
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert closed == ["finally"]


def test_asyncgen_hooks_restored(loop: asyncio.AbstractEventLoop) -> None:

    before = sys.get_asyncgen_hooks()
    seen: list[Any] = []

    async def main() -> None:
        seen.append(sys.get_asyncgen_hooks())

    loop.run_until_complete(main())
    assert seen[0] != before  # the loop installs its hooks while it runs
    assert sys.get_asyncgen_hooks() == before


def test_asyncgen_hooks_custom_ones_restored(loop: asyncio.AbstractEventLoop) -> None:
    """Hooks that were installed before the run are back afterwards, the same objects, and
    no reference to them or to the loop's hooks is lost or leaked by the swap."""

    def firstiter(gen: Any) -> None: ...

    def finalizer(gen: Any) -> None: ...

    old = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=finalizer)
    try:
        refs = sys.getrefcount(firstiter), sys.getrefcount(finalizer)
        seen: list[Any] = []

        async def main() -> None:
            seen.append(sys.get_asyncgen_hooks())

        for _ in range(100):
            loop.run_until_complete(main())
        assert sys.get_asyncgen_hooks() == (firstiter, finalizer)
        assert sys.get_asyncgen_hooks().firstiter is firstiter
        assert (sys.getrefcount(firstiter), sys.getrefcount(finalizer)) == refs
        assert seen[0].firstiter == loop._asyncgen_firstiter_hook  # type: ignore[attr-defined]
        assert seen[0].finalizer == loop._asyncgen_finalizer_hook  # type: ignore[attr-defined]
    finally:
        sys.set_asyncgen_hooks(*old)


def test_asyncgen_hooks_in_another_thread(loop_kind: str) -> None:
    """Each thread has its own hooks: a loop run in a thread sets and restores that thread's."""

    main_hooks = sys.get_asyncgen_hooks()
    out: list[Any] = []

    def run() -> None:
        lp = new_loop_of_kind(loop_kind)

        async def main() -> Any:
            return sys.get_asyncgen_hooks().firstiter

        try:
            out.append(lp.run_until_complete(main()) == lp._asyncgen_firstiter_hook)  # type: ignore[attr-defined]
            out.append(sys.get_asyncgen_hooks())
        finally:
            lp.close()

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert out == [True, (None, None)]
    assert sys.get_asyncgen_hooks() == main_hooks


def test_asyncgen_hooks_audit_events(loop_kind: str) -> None:
    """Installing the hooks raises sys.set_asyncgen_hooks' audit events, as asyncio does (in a
    child: audit hooks cannot be removed)."""
    code = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from loop_helpers import new_loop_of_kind
events = []
sys.addaudithook(lambda ev, args: ev.startswith("sys.set_asyncgen_hook_") and events.append(ev))
loop = new_loop_of_kind({loop_kind!r})
events.clear()
async def main():
    pass
for _ in range(5):  # steploop: the first entries use sys.set_asyncgen_hooks, later ones not
    loop.run_until_complete(main())
loop.close()
print(sorted(set(events)), len(events))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.split() == [
        "['sys.set_asyncgen_hook_finalizer',",
        "'sys.set_asyncgen_hook_firstiter']",
        "20",
    ]


@pytest.mark.parametrize("warm", [0, 5])
def test_asyncgen_hooks_audit_hook_may_refuse(loop_kind: str, warm: int) -> None:
    """An audit hook that raises stops the run before it starts, with its exception, on the
    first entry and on later ones."""
    code = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from loop_helpers import new_loop_of_kind
loop = new_loop_of_kind({loop_kind!r})
async def main():
    return 1
for _ in range({warm}):
    loop.run_until_complete(main())
armed = []
def hook(ev, args):
    if armed and ev == "sys.set_asyncgen_hook_firstiter":
        raise PermissionError("no hooks")
sys.addaudithook(hook)
armed.append(1)
coro = main()
try:
    loop.run_until_complete(coro)
except PermissionError as e:
    print("refused:", e, loop.is_running(), tuple(sys.get_asyncgen_hooks()))
armed.clear()
print(loop.run_until_complete(main()))
loop.close()
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.splitlines() == ["refused: no hooks False (None, None)", "1"]


def test_run_until_complete_future_of_other_loop(
    loop: asyncio.AbstractEventLoop,
) -> None:
    other = asyncio.new_event_loop()
    try:
        fut = other.create_future()
        with pytest.raises(ValueError) as info:
            loop.run_until_complete(fut)
        assert str(info.value) == (
            "The future belongs to a different loop than the one specified as the loop argument"
        )
    finally:
        other.close()


def test_running_loop_functions_swapped_between_runs(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncio looks `events._get_running_loop`/`_set_running_loop` up at each run (CPython's
    tests swap in the pure-Python versions): a replacement made between two runs, and the
    original put back, are both used by the next run."""
    from asyncio import events

    async def main() -> bool:
        return asyncio.get_running_loop() is loop

    assert loop.run_until_complete(main())  # the C functions, looked up once already
    calls: list[str] = []
    py_get, py_set = events._py__get_running_loop, events._py__set_running_loop  # type: ignore[attr-defined]

    def get() -> Any:
        calls.append("get")
        return py_get()

    def set_(lp: Any) -> None:
        calls.append("set")
        py_set(lp)

    monkeypatch.setattr(events, "_get_running_loop", get)
    monkeypatch.setattr(events, "_set_running_loop", set_)
    monkeypatch.setattr(events, "get_running_loop", events._py_get_running_loop)  # type: ignore[attr-defined]
    monkeypatch.setattr(asyncio, "get_running_loop", events._py_get_running_loop)  # type: ignore[attr-defined]
    loop.run_until_complete(main())
    assert "get" in calls and calls.count("set") == 2 and calls[-1] == "set"  # enter, exit
    monkeypatch.undo()
    calls.clear()
    assert loop.run_until_complete(main())
    assert calls == []
