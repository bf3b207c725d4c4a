"""`loop.run_until_complete()`: run the loop until one coroutine is done.

Seed: "`loop.run_until_complete()`". Changed: sleep(0.1) instead of sleep(1).
"""

import asyncio


async def my_coroutine():
    await asyncio.sleep(0.1)
    return "Результат"


# Получаем или создаём event loop
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)

try:
    # Запускаем корутину синхронно
    result = loop.run_until_complete(my_coroutine())
    print(f"Получили: {result}")
finally:
    loop.close()
