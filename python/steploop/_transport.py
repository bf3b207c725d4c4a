"""steploop's socket transport: asyncio's `_SelectorSocketTransport` with a native `write`.

Everything but `write` is asyncio's code (flow control, buffering, `write_eof`, close and
abort, `sslproto` on top). `write` is a method descriptor from the extension
(crates/steploop-py/src/transport_write.rs): for `bytes` on a transport with nothing
buffered it sends natively; any other call goes to asyncio's `write` unchanged. The class
keeps asyncio's name, so the transport's repr is the one asyncio prints.

`Loop._make_socket_transport` uses it for a non-blocking socket of exactly `socket.socket`;
any other socket gets asyncio's class.
"""

from __future__ import annotations

import socket
from asyncio import selector_events
from typing import Any

from . import _steploop

__all__ = ["make_socket_transport"]

_Base: type = selector_events._SelectorSocketTransport  # type: ignore[attr-defined]


class _SelectorSocketTransport(_Base):  # type: ignore[misc, valid-type]
    __slots__ = ()


_steploop._register_socket_transport(_SelectorSocketTransport)


def make_socket_transport(
    loop: Any, sock: Any, protocol: Any, waiter: Any, extra: Any, server: Any
) -> Any:
    """The transport `BaseSelectorEventLoop._make_socket_transport` would make, with the native
    `write` when the socket is a plain non-blocking `socket.socket`."""
    cls: type = _SelectorSocketTransport
    if type(sock) is not socket.socket or sock.gettimeout() != 0:
        cls = _Base
    return cls(loop, sock, protocol, waiter, extra, server)
