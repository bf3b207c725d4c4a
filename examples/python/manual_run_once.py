"""`loop._run_once()`: drive the loop by hand, one iteration at a time.

Seed: "`loop._run_once()` (Приватный метод)". Changed: the call at the end is
uncommented, so the example runs.
"""

import asyncio


async def simple_task():
    print("Задача выполнена")
    return 42


def manual_iteration_example():
    """Пример ручной итерации event loop."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    try:
        # Создаём Future для результата
        future = asyncio.ensure_future(simple_task(), loop=loop)

        # Выполняем итерации пока future не завершится
        while not future.done():
            # ВНИМАНИЕ: приватный метод!
            loop._run_once()

        print(f"Результат: {future.result()}")
    finally:
        loop.close()


# Не рекомендуется для продакшена!
manual_iteration_example()
