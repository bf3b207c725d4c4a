"""`loop.run_forever()` and `loop.stop()`.

Seed: "`loop.run_forever()` и `loop.stop()`". Changed: the periodic task ticks every
0.2 s and the loop is stopped after 0.5 s (the seed: 0.3 s and 2.0 s), so the
example is short and every tick is 0.1 s away from the stop: the output is
"Итерация 1".."Итерация 3" on any machine.
"""

import asyncio


async def schedule_stop(loop, delay):
    """Останавливает event loop через указанное время."""
    await asyncio.sleep(delay)
    loop.stop()


async def periodic_task():
    """Периодическая задача."""
    counter = 0
    while True:
        counter += 1
        print(f"Итерация {counter}")
        await asyncio.sleep(0.2)


def main():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    try:
        # Планируем задачи
        loop.create_task(periodic_task())
        loop.create_task(schedule_stop(loop, 0.5))

        # Запускаем event loop "навсегда"
        loop.run_forever()
        print("Event loop остановлен")
    finally:
        # Отменяем все задачи перед закрытием
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()


main()
