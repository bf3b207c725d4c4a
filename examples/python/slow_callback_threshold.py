"""Debug mode with a custom `slow_callback_duration` threshold.

Seed: "Настройка slow callback threshold". Unchanged.
"""

import asyncio

loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)

# Устанавливаем порог для предупреждений (по умолчанию 0.1 секунды)
loop.slow_callback_duration = 0.05

# Включаем debug-режим
loop.set_debug(True)


async def demo():
    import time

    time.sleep(0.06)  # Будет предупреждение  # noqa: ASYNC251


try:
    loop.run_until_complete(demo())
finally:
    loop.close()
