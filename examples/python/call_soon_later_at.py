"""Scheduling callbacks: `call_soon`, `call_later`, `call_at`.

Seed: "Работа с call_soon и call_later". Unchanged.
"""

import asyncio


def callback_example():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    results = []

    def my_callback(value):
        results.append(value)
        print(f"Callback: {value}")

    # call_soon — выполнить в следующей итерации
    loop.call_soon(my_callback, "first")
    loop.call_soon(my_callback, "second")

    # call_later — выполнить через указанное время
    loop.call_later(0.1, my_callback, "delayed")

    # call_at — выполнить в указанное время (относительно loop.time())
    loop.call_at(loop.time() + 0.2, my_callback, "at_time")

    # Запускаем для выполнения callbacks
    async def wait_for_callbacks():
        await asyncio.sleep(0.3)

    try:
        loop.run_until_complete(wait_for_callbacks())
        print(f"Все результаты: {results}")
    finally:
        loop.close()


callback_example()
