"""The component domain as a MUC room sees it: :class:`RoomHost`, a typing Protocol.

A room is an entity, so its host is a :class:`~component.host.Host`; it also
fans its reflections and presence broadcasts out through the server's
multicast service (XEP-0033) when the domain has one, a choice only the
domain can make (:meth:`component.component.Component.addressed`). The
service is handed such a host and gives it to every room it creates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from component.host import Host

if TYPE_CHECKING:
    from component.output import Piece
    from component.stanza import Broadcast

__all__ = ["RoomHost"]


@runtime_checkable
class RoomHost(Host, Protocol):
    """A component domain, as the MUC service and its rooms see it."""

    def addressed(self, broadcast: Broadcast, recipients: Sequence[bytes]) -> tuple[Piece, int]:
        """``broadcast`` for each of ``recipients`` (from :func:`~component.stanza.address`), and how many stanzas that is.

        One stanza through the server's multicast service when it has one,
        else one stanza each; either goes to :meth:`~component.host.Host.send_bytes`.
        """
