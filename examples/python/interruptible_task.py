# ruff: noqa: UP045  (the seed's code, kept as written)
"""Interruptible long task: a cooperative cancel flag checked between yields.

Seed: "Паттерн: Interruptible Long Task". Changed: `cancel_after(task, 0)`
instead of 0.1 s. With a delay the iteration at which the task stops depends on
how fast the machine is; with 0 it depends only on the order in which the loop
runs ready callbacks, so the output ("итерации 1001") is the same everywhere.
"""

import asyncio
from typing import Optional


class InterruptibleTask:
    """Задача, которую можно прервать."""

    def __init__(self):
        self._cancelled = False
        self._result: Optional[int] = None

    def cancel(self):
        """Запрос на отмену."""
        self._cancelled = True

    async def run(self, iterations: int) -> Optional[int]:
        """Выполняет вычисления с возможностью прерывания."""
        result = 0

        for i in range(iterations):
            if self._cancelled:
                print(f"Задача прервана на итерации {i}")
                return None

            result += i

            # Периодически проверяем и освобождаем event loop
            if i % 1000 == 0:
                await asyncio.sleep(0)

        self._result = result
        return result


async def cancel_after(task: InterruptibleTask, delay: float):
    """Отменяет задачу после задержки."""
    await asyncio.sleep(delay)
    task.cancel()


async def main():
    task = InterruptibleTask()

    # Запускаем задачу и отмену параллельно
    results = await asyncio.gather(task.run(1000000), cancel_after(task, 0), return_exceptions=True)

    print(f"Результат: {results[0]}")


asyncio.run(main())
