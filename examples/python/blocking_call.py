"""Common error: a blocking call inside a coroutine, and the two fixes.

Seed: "Блокирующие операции в event loop". Changed: 0.05 s instead of 5 s, and a
`main()` that runs both coroutines and says what happened.
"""

import asyncio
import time


async def bad_example():
    # ПЛОХО: блокирует весь event loop!
    time.sleep(0.05)  # noqa: ASYNC251


async def good_example():
    # ХОРОШО: не блокирует
    await asyncio.sleep(0.05)

    # Или для CPU-bound операций
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, time.sleep, 0.05)


async def main():
    await bad_example()
    print("bad_example: time.sleep() заблокировал event loop")
    await good_example()
    print("good_example: asyncio.sleep() и run_in_executor() не блокируют event loop")


asyncio.run(main())
