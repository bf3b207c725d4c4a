# ruff: noqa: UP035, BLE001  (the seed's code, kept as written)
"""Sync-to-async bridge: run a coroutine from synchronous code.

Seed: "Паттерн: Sync-to-Async Bridge". Changed: the calls at the end are
uncommented, and `run_async` is called twice: from synchronous code (no loop is
running: `asyncio.run`) and from a coroutine (a loop is running: a new loop in a
helper thread), so both branches run.
"""

import asyncio
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """
    Запускает корутину из синхронного кода.

    Безопасно работает даже если event loop уже существует.
    """
    try:
        # Пытаемся получить текущий event loop
        loop = asyncio.get_running_loop()  # noqa: F841
    except RuntimeError:
        # Нет запущенного loop — создаём новый
        return asyncio.run(coro)

    # Если loop уже запущен — используем его
    # Это сложный случай, требующий особого подхода
    import concurrent.futures  # noqa: F401
    import threading

    # Создаём новый event loop в отдельном потоке
    result_container = {}
    exception_container = {}

    def run_in_thread():
        new_loop = asyncio.new_event_loop()
        asyncio.set_event_loop(new_loop)
        try:
            result_container["result"] = new_loop.run_until_complete(coro)
        except Exception as e:
            exception_container["exception"] = e
        finally:
            new_loop.close()

    thread = threading.Thread(target=run_in_thread)
    thread.start()
    thread.join()

    if "exception" in exception_container:
        raise exception_container["exception"]
    return result_container["result"]


# Использование
async def fetch_data():
    await asyncio.sleep(0.1)
    return {"data": "value"}


# Вызов из синхронного кода
result = run_async(fetch_data())
print(result)


# Вызов из корутины, когда event loop уже запущен
async def main():
    result = run_async(fetch_data())
    print(result)


asyncio.run(main())
