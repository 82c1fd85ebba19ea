"""The room as its features see it: :class:`RoomContext`, a typing Protocol.

Features (:mod:`services.muc.feature`) are handed a room through this
Protocol and never import :class:`services.muc.room.Room`. It lets them
read the room's state (read-only properties: a feature cannot assign them)
and change it only through methods that do everything a change implies:
storing it before it is announced, telling the occupants, keeping the
service's view of the room right.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from lxml import etree
from twisted.internet import defer

from component.entity import AnswerFirst
from component.forms import Form
from component.jid import JID
from component.stanza import Broadcast, Stanza
from services.muc.affiliations import Affiliations
from services.muc.config import RoomConfig
from services.muc.history import History
from services.muc.occupants import Occupant, Occupants
from services.muc.protocol import NO_NEWS, PresenceNews
from services.muc.store import AffiliationChange, HistoryRecord
from services.muc.subject import RoomSubject

if TYPE_CHECKING:
    from component.host import Host
    from component.output import Piece
    from component.storage.leases import Lease
    from services.muc.feature import Registry
    from services.muc.service import MucService

__all__ = ["RoomContext"]

T = TypeVar("T")


class RoomContext(Protocol):
    """One room, for its features: its state to read, and the changes they may ask of it."""

    # -- what the room is --------------------------------------------------------

    @property
    def jid(self) -> JID:
        """The room's bare JID."""

    @property
    def node(self) -> str:
        """The room's name (the node of its JID), as storage and the service's limits know it."""

    @property
    def service(self) -> MucService:
        """The service hosting the room: its ``settings`` (``max_history``, ``max_nick_length``), ``limits``, ``store``."""

    @property
    def component(self) -> Host:
        """The domain hosting the room (its ``clock``, ``fits``, ``max_outgoing_bytes``)."""

    @property
    def config(self) -> RoomConfig:
        """The room's current settings; a new value comes only through :meth:`configure`."""

    @property
    def occupants(self) -> Occupants:
        """Who is in the room; leave it through :meth:`remove`."""

    @property
    def affiliations(self) -> Affiliations:
        """The standing affiliations and reserved nicks; change them through the admin feature's functions."""

    @property
    def locked(self) -> bool:
        """True while a new room waits for its owner's configuration (§10.1.1)."""

    @property
    def lease(self) -> Lease | None:
        """The lease the room is served under with ``[cluster]`` (None: a single instance); writes to it take it."""

    @property
    def stored(self) -> bool:
        """True while the room is in storage (a persistent room, with a store)."""

    @property
    def history(self) -> History:
        """The messages kept for newcomers (its length follows the settings)."""

    @property
    def subject(self) -> RoomSubject:
        """The current subject; a change is stored first (:meth:`store_subject`), then ``set``."""

    @property
    def room_features(self) -> Registry:
        """The room's features, for a feature handling a stanza itself to fire the others' hooks on it."""

    # -- who is who ------------------------------------------------------------------

    def affiliation_of(self, jid: JID) -> str:
        """A user's affiliation; service admins are owners everywhere."""

    def role_for(self, affiliation: str) -> str:
        """The role a user of ``affiliation`` gets on entering; 'none' means it may not enter."""

    def presence_shown(self, role: str) -> bool:
        """Whether the others are sent the presence of an occupant of ``role`` ('none': one leaving)."""

    def occupant_jid(self, nick: str) -> str:
        """The room JID of a nick."""

    def sees_real_jids(self, occupant: Occupant) -> bool:
        """Whether an occupant may see other occupants' real JIDs."""

    # -- sending --------------------------------------------------------------------

    def send(self, element: etree._Element) -> None:
        """Send one stanza as it is (addressed by its ``to``)."""

    def send_bytes(self, data: Piece, count: int = 1) -> None:
        """Send serialised stanzas (``count`` of them): a feature's sends go through the room, never the component."""

    def send_to_occupant(self, occupant: Occupant, data: Broadcast) -> None:
        """Send to every session of an occupant."""

    def broadcast(self, element: etree._Element) -> None:
        """Send one stanza to every session of every occupant."""

    def reflect(self, data: Broadcast) -> None:
        """Send a serialised stanza to every session of every occupant."""

    def send_to_each(self, data: Broadcast, addresses: Sequence[bytes]) -> None:
        """Send a serialised stanza to each of ``addresses``: through the server's multicast service if it has one."""

    def new_stanza_id(self) -> tuple[str, bytes]:
        """A new XEP-0359 stanza-id of the room (never repeated, across restarts too) and its ``<stanza-id/>``, serialised."""

    def message_children(self, occupant: Occupant) -> bytes:
        """What the features add, serialised, to each groupchat message from ``occupant`` (:meth:`Feature.message_children`)."""

    def occupant_id(self, occupant: Occupant) -> str | None:
        """The room's occupant-id (XEP-0421) of ``occupant``; None when the service gives none."""

    def publish(
        self, occupant: Occupant, base: etree._Element, news: PresenceNews = NO_NEWS, *,
        self_sessions: Iterable[JID] | None = None, shown_before: bool = False,
    ) -> None:
        """Tell the room about an occupant's presence ``base`` with ``news``: the others, then the occupant itself (110).

        The others hear of an occupant whose role they are not shown (see
        :meth:`presence_shown`) only when ``shown_before``, and as gone.
        """

    def send_occupant_list(self, to: JID, viewer: Occupant | None) -> None:
        """Send every other occupant's current presence to one client."""

    def remove(self, occupant: Occupant, codes: Iterable[int], *, affiliation: str | None = None,
               actor: str | None = None, reason: str | None = None, status: str | None = None) -> None:
        """Take an occupant out of the room and tell everyone, with ``codes`` (kick, ban, lost membership)."""

    # -- changes ----------------------------------------------------------------------

    def config_form(self) -> Form:
        """The configuration form (§10.1.2), filled with the current settings."""

    async def configure(self, x: etree._Element, by: JID | None = None) -> AnswerFirst:
        """Apply a form submitted ``by`` an owner: every feature reads it, the result is stored, then applied.

        The answer to the owner carries the announcement, which follows it.
        Lists that would take the room past ``max_affiliations`` refuse the
        whole form (``policy-violation``).
        """

    def reflect_groupchat(self, stanza: Stanza) -> Any:
        """Reflect a groupchat message from an occupant as the room reflects any (checks, stanza-id, archive, history).

        For a feature's groupchat handler, once what the message changes is
        stored; await the result: it fires once the message is archived and sent.
        """

    async def change_settings(self, **changes: Any) -> None:
        """Change settings no form field holds (``RoomConfig`` fields by name): stored first when the room is stored.

        Nothing is announced: the caller tells the occupants what they need to know.
        """

    async def store_subject(self, subject: str, nick: str, at: float | None, record: HistoryRecord | None) -> None:
        """Store a new subject, set by ``nick`` at ``at``, when the room is stored, with ``record`` (the message
        that sets it) archived in one transaction."""

    async def store_affiliations(self, changes: list[AffiliationChange], by: JID | None = None) -> None:
        """Store affiliation changes asked for ``by`` someone when the room is stored, in one transaction; refused,
        it raises the requester's error.

        Changes that would take the room past ``max_affiliations`` are
        refused whole (``policy-violation``), stored room or not; a service
        admin ``by`` is exempt.
        """

    async def destroy(self, alternate: str | None, reason: str | None, password: str | None = None) -> None:
        """Destroy the room (§10.9): forgotten in storage first, then every occupant is told."""

    def request(self, element: etree._Element, timeout: float | None = None) -> defer.Deferred[Any]:
        """Send an IQ request from the room; fires with the reply."""

    def in_turn(self, work: Callable[[], T]) -> Any:
        """Run ``work`` as one more stanza: after those before it, before those after it."""
