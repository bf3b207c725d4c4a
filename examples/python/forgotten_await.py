"""Common error: a coroutine called without `await` never runs.

Seed: "Забытый await". Changed: sleep(0.1) instead of sleep(1), and the coroutine
is run. CPython prints "RuntimeWarning: coroutine 'sleep' was never awaited" when
the forgotten coroutine object is destroyed; `gc.collect()` makes sure it is
destroyed before the program ends, whatever holds on to it.
"""

import asyncio
import gc


async def example():
    # ПЛОХО: корутина не выполнится!
    asyncio.sleep(0.1)  # Создаётся, но не await'ится

    # ХОРОШО:
    await asyncio.sleep(0.1)


asyncio.run(example())
gc.collect()
print("example() завершена")
