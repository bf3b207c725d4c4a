"""Ready-made integrations that drive a steploop loop from another framework's event loop.

- `steploop.integrations.tkinter`: Tk's ``mainloop`` runs asyncio code, no helper thread.

For a host loop without an integration here, see `steploop.start_guest_run` (any host that
can run a function soon on its thread) or drive the loop yourself with ``loop.fileno()``,
``loop.time_until_next()`` and ``loop.run_once(0)`` (docs/forced-iteration.md).
"""
