"""steploop inside Tk's mainloop, with a real Tk window on a virtual X server (Xvfb).

`steploop.integrations.tkinter` drives the loop from Tk (no helper thread), and guest mode
(`steploop.start_guest_run`) runs with Tk as its host. Each test shows that asyncio code
(sleeps, a socket, widget updates) and Tk's own events (timers, bindings, button commands)
progress together: the tests are built so that they can only finish if both do. No test
measures time.

Needs tkinter and Xvfb; scripts/test.sh installs Xvfb and sets STEPLOOP_REQUIRE_TK=1, which
turns a missing one into a failure instead of a skip.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import steploop

if TYPE_CHECKING:
    import tkinter

pytestmark = pytest.mark.steploop_only

REQUIRED = os.environ.get("STEPLOOP_REQUIRE_TK", "") not in ("", "0")
ROOT = Path(__file__).resolve().parent.parent


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"{reason} (STEPLOOP_REQUIRE_TK is set)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    """A private Xvfb server for this module; DISPLAY points at it meanwhile."""
    try:
        import tkinter  # noqa: F401
    except ImportError as exc:
        _unavailable(f"tkinter is not available in {sys.executable}: {exc}")
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        _unavailable("Xvfb is not installed (apt-get install xvfb)")
        raise AssertionError("unreachable")
    # -displayfd: the server picks a free display number and writes it to the pipe when it
    # is ready to accept clients.
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        [xvfb, "-displayfd", str(write_end), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        number = pipe.readline().strip()
    if not number:
        server.kill()
        _, err = server.communicate()
        pytest.fail(f"Xvfb did not start: {err.decode(errors='replace')}", pytrace=False)
    name = f":{number}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DISPLAY", name)
        try:
            yield name
        finally:
            server.terminate()
            server.wait(timeout=30)


@pytest.fixture
def root(display: str) -> Iterator[tkinter.Tk]:
    import tkinter

    root = tkinter.Tk()
    root.geometry("200x100")
    try:
        yield root
    finally:
        try:
            root.destroy()
        except tkinter.TclError:
            pass  # the test destroyed it


def test_coroutine_and_tk_progress_together(root: tkinter.Tk) -> None:
    """A coroutine sleeps, reads a socket and updates a label, while Tk runs its timers and
    bindings. The socket's data is sent by a Tk timer, and the coroutine waits for a Tk
    binding: it can only finish if Tk kept processing its events meanwhile."""
    import tkinter

    from steploop.integrations import tkinter as steploop_tk

    label = tkinter.Label(root, text="start")
    label.pack()
    texts: list[str] = []
    ticks: list[int] = []
    a, b = socket.socketpair()

    def tick() -> None:  # a plain Tk timer, firing while the coroutine waits
        ticks.append(len(ticks))
        if len(ticks) == 3:
            b.sendall(b"hello from Tk\n")
        if len(ticks) < 50:
            root.after(1, tick)

    root.after(1, tick)
    pinged: list[asyncio.Future[str]] = []
    root.bind("<<Ping>>", lambda _event: pinged[0].set_result("pong"))

    async def main() -> tuple[str, str]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, steploop.Loop)
        assert threading.current_thread() is threading.main_thread()
        reader, writer = await asyncio.open_connection(sock=a)
        for n in range(3):
            label["text"] = f"sleep {n}"
            texts.append(label["text"])
            await asyncio.sleep(0.001)
        line = await reader.readline()  # sent by the 3rd Tk tick
        label["text"] = line.decode().strip()
        texts.append(label["text"])
        pinged.append(loop.create_future())
        root.event_generate("<<Ping>>", when="tail")  # handled by Tk, answered to us
        answer = await pinged[0]
        root.update()  # Tk's event loop, from inside a step: must not re-enter the loop
        writer.close()
        await writer.wait_closed()
        return line.decode().strip(), answer

    try:
        assert steploop_tk.run(root, main()) == ("hello from Tk", "pong")
    finally:
        b.close()
    assert texts == ["sleep 0", "sleep 1", "sleep 2", "hello from Tk"]
    assert label["text"] == "hello from Tk"
    assert len(ticks) >= 3


def test_install_and_button(root: tkinter.Tk) -> None:
    """`install` drives a loop the program owns; a Tk button schedules work on it."""
    import tkinter

    from steploop.integrations import tkinter as steploop_tk

    loop = steploop.new_event_loop()
    label = tkinter.Label(root, text="0")
    label.pack()
    clicks: list[int] = []

    async def on_click() -> None:
        await asyncio.sleep(0.001)
        clicks.append(len(clicks) + 1)
        label["text"] = str(len(clicks))
        if len(clicks) == 3:
            root.quit()
        else:
            root.after(1, button.invoke)

    # The command runs in Tk's callback, outside any step: create_task wakes the loop
    # through its fd, which Tk watches.
    button = tkinter.Button(root, text="+1", command=lambda: loop.create_task(on_click()))
    button.pack()
    root.after(1, button.invoke)
    try:
        with steploop_tk.install(root, loop) as driver:
            assert "installed" in repr(driver)
            root.mainloop()
        assert "uninstalled" in repr(driver)
        assert clicks == [1, 2, 3]
        assert label["text"] == "3"
        # Uninstalled: Tk no longer drives the loop.
        loop.call_soon(clicks.append, 99)
        root.update()
        assert clicks == [1, 2, 3]
    finally:
        loop.close()


def test_closing_the_window_cancels_the_coroutine(root: tkinter.Tk) -> None:
    from steploop.integrations import tkinter as steploop_tk

    events: list[str] = []

    async def main() -> None:
        root.after(1, root.destroy)  # the user closes the window
        try:
            await asyncio.sleep(3600)
        finally:
            events.append("cleaned up")

    with pytest.raises(asyncio.CancelledError):
        steploop_tk.run(root, main())
    assert events == ["cleaned up"]


def test_exception_propagates(root: tkinter.Tk) -> None:
    from steploop.integrations import tkinter as steploop_tk

    async def main() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        steploop_tk.run(root, main())


def test_guest_mode_with_tk_as_host(root: tkinter.Tk) -> None:
    """Guest mode: the helper thread hands each step to Tk with `root.after(0, fn)`
    (tkinter passes calls from other threads to the Tk thread)."""
    import tkinter

    threaded = root.tk.call("info", "exists", "tcl_platform(threaded)")
    if not threaded:
        pytest.skip("this Tcl is not threaded: tkinter cannot be called from another thread")
    label = tkinter.Label(root, text="")
    label.pack()
    ticks: list[int] = []

    def tick() -> None:
        ticks.append(1)
        root.after(1, tick)

    root.after(1, tick)
    threads: set[int] = set()
    outcomes: list[asyncio.Task[Any]] = []
    a, b = socket.socketpair()

    async def main() -> str:
        threads.add(threading.get_ident())
        reader, writer = await asyncio.open_connection(sock=a)
        for n in range(3):
            label["text"] = str(n)
            await asyncio.sleep(0.001)
            threads.add(threading.get_ident())
        root.after(1, b.sendall, b"data\n")  # Tk sends, the guest reads
        line = await reader.readline()
        writer.close()
        await writer.wait_closed()
        threads.add(threading.get_ident())
        return line.decode().strip()

    def done(outcome: asyncio.Task[Any]) -> None:
        outcomes.append(outcome)
        root.quit()

    try:
        steploop.start_guest_run(
            main(), run_sync_soon_threadsafe=lambda fn: root.after(0, fn), done_callback=done
        )
        root.mainloop()
    finally:
        b.close()
    assert outcomes[0].result() == "data"
    assert threads == {threading.get_ident()}
    assert label["text"] == "2"
    assert ticks  # Tk's own timer kept firing


def test_tk_counter_example(display: str) -> None:
    """examples/python/tk_counter.py, in its self-driving --demo mode."""
    proc = subprocess.run(
        [sys.executable, "examples/python/tk_counter.py", "--demo"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        encoding="utf-8",
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[-1] == "done: count=5, clicks=2, server said 'ready'"
