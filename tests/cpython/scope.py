"""What the CPython conformance runner executes: modules, per-module filters, loop bindings.

This is the one file to edit when widening the scope (issue 5): add modules to ``MODULES``,
shrink the exclusion lists, add loop bindings for modules that hard-code asyncio's loops.
Both the parent (``run.py``) and the child (``_child.py``) import it.
"""

from __future__ import annotations

from dataclasses import dataclass

# Modules of CPython's ``test.test_asyncio`` package that run against steploop.
MODULES: tuple[str, ...] = (
    "test_tasks",
    "test_futures",
    "test_futures2",
    "test_locks",
    "test_queues",
    "test_runners",
    "test_taskgroups",
    "test_timeouts",
    "test_waitfor",
    "test_context",
    "test_pep492",
    "test_events",  # every loop mixin (network and subprocess included)
    # Issue 5: networking and processes.
    "test_sock_lowlevel",
    "test_streams",
    "test_server",
    "test_sendfile",
    "test_buffered_proto",
    "test_subprocess",
    "test_sslproto",
    "test_ssl",
    "test_unix_events",
    "test_threads",
)

# Words that mark a test as needing the network / processes / transports. A test whose
# *method name* contains one of these (case-insensitive) is not collected. Issue 5 widens
# the scope by removing words from this tuple as steploop grows those features.
NETWORK_WORDS: tuple[str, ...] = (
    "sock",  # sock_recv, sock_sendall, socketpair-based transports...
    "connection",  # create_connection, connect_accepted_socket, ...
    "server",  # create_server, start_serving, ...
    "ssl",  # TLS
    "unix",  # AF_UNIX transports
    "datagram",  # UDP
    "subprocess",  # subprocess_exec / subprocess_shell (SubprocessTestsMixin)
    "pipe",  # connect_read_pipe / connect_write_pipe
    "sendfile",
    "getaddrinfo",
    "getnameinfo",
    "create_",  # every other create_* transport factory
)

# module -> words excluded from test method names in that module.
EXCLUDE_METHOD_WORDS: dict[str, tuple[str, ...]] = {}

# module -> whole test classes not collected (with the reason in a comment).
EXCLUDE_CLASSES: dict[str, tuple[str, ...]] = {}


@dataclass(frozen=True)
class LoopBinding:
    """Replace a module's loop-specific TestCase classes by one bound to the loop under test.

    ``replaced``: classes that test asyncio's own loops (SelectorEventLoop with a given
    selector); they are removed from the module. ``mixins``: names of the module's mixins the
    generated class inherits from, in order (the generated class is
    ``class <name>(*mixins)`` with ``create_event_loop`` returning a new loop under test).
    """

    name: str
    replaced: tuple[str, ...]
    mixins: tuple[str, ...]


# The per-selector TestCase classes these modules define for asyncio's own loops.
ASYNCIO_LOOP_CLASSES: tuple[str, ...] = (
    "SelectEventLoopTests",
    "PollEventLoopTests",
    "EPollEventLoopTests",
    "KqueueEventLoopTests",
    "ProactorEventLoopTests",
)

# The generated class has the same name in --loop asyncio mode (where it is bound to asyncio's
# default loop), so test ids are identical for both loops and the two runs can be compared.
LOOP_BINDINGS: dict[str, LoopBinding] = {
    # test_events: class SelectEventLoopTests(UnixEventLoopTestsMixin,
    #                                         SubprocessTestsMixin, test_utils.TestCase)
    "test_events": LoopBinding(
        name="SteploopEventLoopTests",
        replaced=ASYNCIO_LOOP_CLASSES,
        mixins=("UnixEventLoopTestsMixin", "SubprocessTestsMixin", "test_utils.TestCase"),
    ),
    # Ready for issue 5 (not in MODULES yet): same structure as test_events.
    "test_sock_lowlevel": LoopBinding(
        name="SteploopEventLoopTests",
        replaced=ASYNCIO_LOOP_CLASSES,
        mixins=("BaseSockTestsMixin", "test_utils.TestCase"),
    ),
    "test_sendfile": LoopBinding(
        name="SteploopEventLoopTests",
        replaced=ASYNCIO_LOOP_CLASSES,
        mixins=("SendfileTestsBase", "test_utils.TestCase"),
    ),
}

# Tests that call ``new_test_loop()`` without a time generator get the loop under test
# (bindings.bind_plain_test_loop), except these, which drive the loop through asyncio's
# private internals and so keep asyncio's ``TestLoop`` (white-box; on steploop they would only
# fail with AttributeError, and the garbage their aborted runs leave behind makes later,
# unrelated tests flaky). Entries are ``Class`` or ``*.method`` or ``Class.method``.
KEEP_TEST_LOOP: dict[str, tuple[str, ...]] = {
    "test_tasks": (
        "CoroutineGatherTests",  # _run_loop(): `while loop._ready: run_briefly(loop)`
        "FutureGatherTests",  # same base class (GatherTestsBase)
        "*.test_log_destroyed_pending_task",  # loop._run_once(); len(loop._ready)
    ),
}

# Prefix stripped from unittest ids: "test.test_asyncio.test_tasks.X.y" -> "test_tasks.X.y".
ID_PREFIX = "test.test_asyncio."


def keeps_test_loop(module: str, class_name: str, method_name: str) -> bool:
    """True if this test keeps asyncio's TestLoop for ``new_test_loop()`` (see above)."""
    for entry in KEEP_TEST_LOOP.get(module, ()):
        cls, _, meth = entry.partition(".")
        if cls in ("*", class_name) and meth in ("", method_name):
            return True
    return False


def is_excluded(module: str, class_name: str, method_name: str) -> bool:
    """True if the test is out of scope (not collected at all)."""
    if class_name in EXCLUDE_CLASSES.get(module, ()):
        return True
    lowered = method_name.lower()
    return any(word in lowered for word in EXCLUDE_METHOD_WORDS.get(module, ()))
