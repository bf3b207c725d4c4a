"""`await asyncio.sleep(0)`: yield to the loop from a long computation.

Seed: "Метод `asyncio.sleep(0)`". Changed: 100_000 iterations with a yield every
1_000 (the seed: 1_000_000 and 10_000), so the computation ends well before the
background task's second wake-up (0.5 s) and the output is deterministic.
"""

import asyncio


async def long_computation():
    """Длительное вычисление с периодическим освобождением event loop."""
    result = 0
    for i in range(100000):
        result += i * i

        # Каждые 1000 итераций даём event loop возможность работать
        if i % 1000 == 0:
            await asyncio.sleep(0)
            print(f"Прогресс: {i / 1000}%")

    return result


async def background_task():
    """Фоновая задача."""
    while True:
        print("Фоновая задача работает!")
        await asyncio.sleep(0.5)


async def main():
    # Запускаем фоновую задачу
    bg = asyncio.create_task(background_task())

    # Длительное вычисление не блокирует фоновую задачу
    result = await long_computation()
    print(f"Результат: {result}")

    bg.cancel()


asyncio.run(main())
