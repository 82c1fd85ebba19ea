"""Writing to a TCP socket at once when nothing waits before it, instead of on the reactor's next turn.

Twisted's ``transport.write`` only buffers: the bytes go out once the reactor
has asked epoll whether the socket is writable, a second turn of the loop
(and two ``epoll_ctl`` calls) for every write. A component that answers each
read with one write pays that turn once per read: behind a server at a few
hundred reads a second, more CPU than the stanzas themselves. When the
transport's own buffer is empty, nothing can be overtaken, so the bytes may be
handed to the socket in the same turn; what it does not take (a full socket
buffer) goes to the transport as before, and its flow control is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import abstract, tcp

__all__ = ["Sender", "sender_for"]

#: Sends what it can of the bytes at once; returns the rest, for ``transport.write``.
Sender = Callable[[bytes], bytes]


def _unsent(data: bytes) -> bytes:
    return data


def sender_for(transport: object) -> Sender:
    """The immediate sender of ``transport``: a plain TCP connection's socket, else none (all is left)."""
    plain = getattr(transport, "TLS", False) is False
    if not isinstance(transport, tcp.Connection) or not plain or getattr(type(transport), "write", None) is not abstract.FileDescriptor.write:
        # TLS, a test's transport, or a transport that does more in write() than buffer.
        return _unsent
    connection = transport

    def send(data: bytes) -> bytes:
        # Twisted's buffer is the bytes string dataBuffer (from offset on) and the list
        # _tempDataBuffer, _tempDataLen bytes long: both empty means nothing is waiting.
        if (
            connection.dataBuffer
            or connection._tempDataLen
            or connection.disconnecting
            or not connection.connected
            or connection.TLS
        ):
            return data
        sent = connection.writeSomeData(data)
        if not isinstance(sent, int):
            # The connection is lost: the transport finds out on its own write.
            return data
        return data[sent:] if sent < len(data) else b""

    return send
