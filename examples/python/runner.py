"""`asyncio.Runner`: several coroutines on one loop, and access to that loop.

Seed: "Особенности Python 3.10+ (asyncio.Runner)". Changed: `using_runner()` is
uncommented.
"""

import asyncio


async def task1():
    await asyncio.sleep(0.1)
    return "task1"


async def task2():
    await asyncio.sleep(0.1)
    return "task2"


# Python 3.11+
def using_runner():
    with asyncio.Runner() as runner:
        # Можно выполнить несколько корутин последовательно
        result1 = runner.run(task1())
        result2 = runner.run(task2())
        print(f"Результаты: {result1}, {result2}")

        # Также есть доступ к loop
        loop = runner.get_loop()
        print(f"Event loop: {loop}")


using_runner()  # Раскомментируйте для Python 3.11+
