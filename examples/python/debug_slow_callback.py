"""Debug mode: a blocking call inside a task is reported as a slow callback.

Seed: "Debug-режим Event Loop". Changed: the `asyncio.run(main(), debug=True)`
call is uncommented. The loop logs "Executing <Task ...> took 0.2xx seconds" on
the `asyncio` logger (stderr).
"""

import asyncio


async def slow_callback():
    """Медленный callback для демонстрации."""
    import time

    time.sleep(0.2)  # Блокирующая операция!  # noqa: ASYNC251


async def main():
    # Создаём задачу с блокирующей операцией
    await slow_callback()


# Запуск в debug-режиме
asyncio.run(main(), debug=True)
# В debug-режиме будет предупреждение о блокирующей операции
