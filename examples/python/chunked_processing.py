# ruff: noqa: UP006, UP035  (the seed's code, kept as written)
"""Chunked processing: yield to the loop between chunks of work.

Seed: "Паттерн: Chunked Processing". Unchanged.
"""

import asyncio
from typing import AsyncIterator, Callable, List, TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def chunked_process(
    items: List[T], processor: Callable[[T], R], chunk_size: int = 100
) -> AsyncIterator[R]:
    """
    Обрабатывает элементы чанками, освобождая event loop между чанками.
    """
    for i in range(0, len(items), chunk_size):
        chunk = items[i : i + chunk_size]

        # Обрабатываем чанк
        for item in chunk:
            yield processor(item)

        # Освобождаем event loop
        await asyncio.sleep(0)


async def main():
    data = list(range(10000))

    async for result in chunked_process(data, lambda x: x * 2, chunk_size=1000):
        pass  # Обработка результата

    print("Обработка завершена")


asyncio.run(main())
