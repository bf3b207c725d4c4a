"""Common error: `asyncio.run()` inside a running event loop.

Seed: "Вложенный asyncio.run()". Changed: the wrong call is made (not commented
out) so the RuntimeError is shown; the coroutine it was given is closed, since it
never ran. Then the right way (`await`) runs.
"""

import asyncio


async def inner():
    return 42


async def outer():
    # ОШИБКА: RuntimeError!
    coro = inner()
    try:
        result = asyncio.run(coro)
    except RuntimeError as e:
        print(f"RuntimeError: {e}")
        coro.close()

    # ПРАВИЛЬНО:
    result = await inner()
    return result


print(f"Результат: {asyncio.run(outer())}")
