"""What waits to be written to the server: built stanzas, and fan-outs built as the link drains.

A send is either ``bytes`` (stanzas already serialised) or a :class:`Lazy` piece:
a fan-out that knows how many bytes and stanzas it will produce and builds them a
chunk at a time, only when the connection has room for them. A room of thousands
then costs the memory of one serialised stanza and its address list, however slowly
the server reads. :class:`Output` keeps the sends in order and counts what they owe.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, TypeVar

__all__ = ["EAGER_BYTES", "Lazy", "Output", "Piece", "Rendered", "whole"]
#: Fan-outs up to this size are built at once: cheaper than building them in chunks,
#: and small enough that the sends of a whole read, built, stay small.
EAGER_BYTES = 16 * 1024

_T = TypeVar("_T")


class Lazy(Protocol):
    """A run of stanzas built on demand, in order, whole stanzas at a time."""

    #: Bytes still to come.
    size: int
    #: Stanzas still to come.
    stanzas: int
    #: How the first stanza starts: at least ``<`` and the initial of its name.
    start: bytes

    def take(self, budget: int) -> bytes:
        """The next stanzas, about ``budget`` bytes of them and at least one; they are then gone."""


Piece = bytes | Lazy


def whole(piece: Piece) -> bytes:
    """Everything a piece still has to give, built now."""
    if isinstance(piece, bytes):
        return piece
    return piece.take(piece.size) if piece.stanzas else b""


class Rendered:
    """Stanzas built one item at a time by ``render`` (a history replay: each message with its delay)."""

    __slots__ = ("_items", "_render", "size", "stanzas", "start")

    def __init__(self, items: Sequence[_T], render: Callable[[_T], bytes], size: int, start: bytes) -> None:
        """``size`` is the length of everything ``render`` will return, summed; ``start`` how each begins."""
        self._items: Iterator[_T] = iter(items)
        self._render = render
        self.size = size
        self.stanzas = len(items)
        self.start = start

    def take(self, budget: int) -> bytes:
        parts = []
        while self.stanzas and budget > 0:
            part = self._render(next(self._items))
            parts.append(part)
            budget -= len(part)
            self.stanzas -= 1
        data = b"".join(parts)
        self.size -= len(data)
        return data


class Output:
    """Sends in the order they were made, with what they owe in bytes.

    ``size`` counts every byte still to be written, lazy or built; ``held``
    only the bytes already built, which is what the queue costs in memory.
    """

    __slots__ = ("_pieces", "held", "size")

    def __init__(self) -> None:
        self._pieces: deque[Piece] = deque()
        self.size = 0
        self.held = 0

    def __len__(self) -> int:
        return len(self._pieces)

    def __bool__(self) -> bool:
        return bool(self._pieces)

    def append(self, piece: Piece) -> None:
        """Add a send after all the others."""
        if isinstance(piece, bytes):
            self.held += len(piece)
            self.size += len(piece)
        else:
            self.size += piece.size
        self._pieces.append(piece)

    def take(self, budget: int) -> bytes:
        """The oldest stanzas, about ``budget`` bytes and at least one send's worth, joined.

        A built send is taken whole: splitting it would hold no less.
        """
        pieces = self._pieces
        parts = []
        while pieces and budget > 0:
            piece = pieces[0]
            if isinstance(piece, bytes):
                pieces.popleft()
                self.held -= len(piece)
                part = piece
            else:
                part = piece.take(budget)
                if not piece.stanzas:
                    pieces.popleft()
            parts.append(part)
            budget -= len(part)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self.size -= len(data)
        return data

    def drop_oldest(self) -> int:
        """Forget the oldest send; return how many stanzas it had left (a built send counts one)."""
        piece = self._pieces.popleft()
        if isinstance(piece, bytes):
            self.held -= len(piece)
            self.size -= len(piece)
            return 1
        self.size -= piece.size
        return piece.stanzas

    def pop_all(self) -> list[Piece]:
        """Every send, oldest first, leaving the queue empty."""
        pieces = list(self._pieces)
        self._pieces.clear()
        self.size = self.held = 0
        return pieces
