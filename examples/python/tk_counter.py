"""A Tk window whose label is driven by asyncio code, on one thread, with steploop.

The counter ticks from a coroutine (`asyncio.sleep`), a status line comes from a tiny TCP
server the program talks to (asyncio streams), and the "+10" button schedules a coroutine
from a Tk callback. Tk stays responsive throughout: no thread, no `root.update()` polling.

    python examples/python/tk_counter.py          # a window; close it to quit
    python examples/python/tk_counter.py --demo   # clicks itself, prints, exits (tests)
"""

from __future__ import annotations

import asyncio
import sys
import tkinter

from steploop.integrations import tkinter as steploop_tk


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"ready\n")
    await writer.drain()
    writer.close()


async def main(root: tkinter.Tk, demo: bool) -> str:
    loop = asyncio.get_running_loop()
    count = tkinter.IntVar(root, 0)
    status = tkinter.StringVar(root, "connecting...")
    clicks = 0

    async def add_ten() -> None:
        nonlocal clicks
        clicks += 1
        for _ in range(10 if not demo else 0):
            count.set(count.get() + 1)
            await asyncio.sleep(0.05)

    tkinter.Label(root, textvariable=count, font=("TkDefaultFont", 32)).pack(padx=40, pady=10)
    tkinter.Label(root, textvariable=status).pack()
    button = tkinter.Button(root, text="+10", command=lambda: loop.create_task(add_ten()))
    button.pack(pady=10)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    said = (await reader.readline()).decode().strip()
    status.set(f"server said {said!r}")
    writer.close()
    server.close()

    for _ in range(5 if demo else 1_000_000):
        await asyncio.sleep(0.01 if demo else 1.0)
        count.set(count.get() + 1)
        if demo and count.get() in (2, 4):
            button.invoke()  # as if clicked
            await asyncio.sleep(0)  # let the click's task run
    return f"count={count.get()}, clicks={clicks}, server said {said!r}"


if __name__ == "__main__":
    demo = "--demo" in sys.argv[1:]
    root = tkinter.Tk()
    root.title("steploop + Tk")
    try:
        print("done:", steploop_tk.run(root, main(root, demo)))
    except asyncio.CancelledError:
        print("window closed")  # closing the window cancels main()
    else:
        root.destroy()
