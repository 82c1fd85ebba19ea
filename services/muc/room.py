"""The room core (XEP-0045): the entity at ``room@service``, whose resources are its occupants.

The core holds the occupants, their roles and the affiliations, the order
of stanzas, the timers (the lock of a new room, unloading an idle one),
the dispatch of presences, messages and IQs, and the pipeline of a
configuration change. Everything else is a feature
(:mod:`services.muc.features`): the core fires their hooks
(:mod:`services.muc.feature`) and hands them itself as a
:class:`~services.muc.context.RoomContext`. What must survive is written
through the room's :class:`~services.muc.persistence.RoomStorage`.

Stanzas to one room are handled one at a time in arrival order
(:class:`component.ordering.Turns`): while a write that a stanza
acknowledges is in flight, later stanzas wait, so nobody sees an effect
before it is durable and effects never overtake each other. Groupchat
messages of a persistent room are the exception that keeps it fast: they
are handled while earlier messages wait for their history rows, and wait
in line behind them to be reflected (see :mod:`services.muc.archive`);
other stanzas wait until the line is empty.
"""

from __future__ import annotations

import copy
import functools
import inspect
import itertools
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import attrs
from lxml import etree
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from component import namespaces as ns
from component.disco import Identity, Item
from component.entity import AnswerFirst, Entity, IQResult, iq_handler
from component.errors import StanzaError
from component.forms import Form
from component.jid import JID, parse_jid, parse_stored_jid
from component.ordering import Turns
from component.output import Piece
from component.stanza import Broadcast, Spliced, Stanza, address, splice, text_of
from component.storage import StorageError
from component.storage.leases import Lease, LeaseLost
from services.muc.affiliations import AFFILIATION_RANK, ROLE_RANK, Affiliations, default_role
from services.muc.archive import Archive, InLine
from services.muc.claims import strip_claims
from services.muc.config import RoomConfig
from services.muc.feature import NOT_MINE, ConfigSubmission, Join, Registry
from services.muc.history import History, HistoryEntry, archive_record
from services.muc.live import LiveChanges, LiveRoom, LiveState, LiveTracker, live_occupant, restore_occupant
from services.muc.nicks import check_nick
from services.muc.occupants import KEEP_LISTS_FROM, Occupant, Occupants, presence_template
from services.muc.persistence import RoomStorage
from services.muc.protocol import MUC, MUC_USER, NO_NEWS, PARSER, STABLE_ID, X_MUC, PresenceNews, item, user_x
from services.muc.store import AffiliationChange, HistoryRecord, RoomRecord
from services.muc.subject import RoomSubject
from services.muc.tenure import Tenure, moved

if TYPE_CHECKING:
    from component.leases import Leases
    from services.muc.host import RoomHost
    from services.muc.service import MucService
    from services.muc.store import MucStore

__all__ = ["Room"]

# RFC 7622 §3.1: a JID is at most 3071 bytes (three parts of 1023).
_LONGEST_ADDRESS = 3071

log = Logger()

#: Errors that mean the client an occupant joined from is gone (a ghost).
KICKABLE_ERRORS = frozenset({
    "gone", "internal-server-error", "item-not-found", "jid-malformed", "recipient-unavailable",
    "redirect", "remote-server-not-found", "remote-server-timeout", "service-unavailable",
})
_BODY = f"{{{ns.COMPONENT}}}body"
# XEP-0334 hints a sender gives for a message the room must not keep in its history (as Prosody).
_NOT_KEPT = frozenset({"{urn:xmpp:hints}no-store", "{urn:xmpp:hints}no-permanent-store"})
# Stanza ids (XEP-0359) must never repeat in a room, across restarts too:
# a random prefix per process, then a counter.
_ID_PREFIX = uuid.uuid4().hex[:12] + "-"
_ids = itertools.count(1)
# Where an address goes in a serialised presence: NUL never occurs in XML.
_GAP = b"\x00"
_Work = Callable[[Stanza], Any]
T = TypeVar("T")


class Room(Entity):
    """One chat room and its occupants."""

    #: The domain hosting the room (its service's).
    component: RoomHost

    def __init__(self, service: MucService, jid: JID) -> None:
        super().__init__(service.component, jid)
        self.service = service
        #: The features whose hooks the room fires (the service's).
        self.room_features = service.room_features
        settings = service.settings
        self.config = RoomConfig(history_length=min(20, settings.max_history), archiving=settings.archive_by_default)
        self.affiliations = Affiliations()
        self.occupants = Occupants()
        self.history = History(self.config.history_length)
        self.subject = RoomSubject()
        #: False until someone creates the room (or it is loaded from storage).
        self.exists = False
        #: Every write the room makes goes through it.
        self.storage = RoomStorage(service, jid.node or "", str(jid))
        #: A new room stays locked until its owner configures it (§10.1.1).
        self.locked = False
        self.destroyed = False
        # Stanzas in arrival order, each waiting for the writes before it.
        self._turns = Turns(blocked=self._blocked, holds=_holds_turn)
        self._settling = False
        # Created with the first message of a persistent room.
        self._archive: Archive | None = None
        self._timer: IDelayedCall | None = None
        #: When the room last handled a presence or a message (or was loaded).
        self.last_activity = self.component.clock.seconds()
        # With live state: its rows, lease and held output (see keep_live).
        self._tenure: Tenure | None = None
        # When the lock of a new room ends, while it is locked.
        self._lock_until: float | None = None
        #: True once the room left memory without a word (another instance serves it now).
        self.dropped = False
        # What every stanza-id of the room starts with, up to its id (the room's address never changes).
        self._stanza_id_head = b'<stanza-id xmlns="urn:xmpp:sid:0" by="' + address(jid) + b'" id="'

    @property
    def node(self) -> str:
        """The room's name: the node of its JID."""
        return self.jid.node or ""

    # -- one stanza at a time ---------------------------------------------

    def _in_turn(self, work: _Work, stanza: Stanza) -> Any:
        if self.dropped:
            raise moved(str(self.jid))
        tenure = self._tenure
        if tenure is not None:
            work = functools.partial(tenure.run, work, quiet=_joins_line(stanza, self.room_features))
        turns = self._turns
        if self._held():
            self._check_room_to_wait(stanza)
            if not turns.idle or self._blocked(stanza):
                stanza.keep()  # it waits for its turn
        try:
            result = turns.run(functools.partial(self._handle, work, stanza), stanza)
        except Exception:
            self._settle()
            raise
        if turns.idle:
            self._settle()
        elif not self._settling:
            # Once the stanzas before have run, the room may have to go.
            self._settling = True
            turns.drain().addCallback(self._drained)
        return result

    def _blocked(self, stanza: object) -> bool:
        """Whether a stanza waits although nothing runs: messages wait for their rows, and it may not join them."""
        return bool(self._archive) and not _joins_line(stanza, self.room_features)  # type: ignore[arg-type]

    def _handle(self, work: _Work, stanza: Stanza) -> Any:
        """Handle a stanza in its turn; handled while messages before it wait for their rows, what it causes waits behind them."""
        line = self._archive or None
        if line is None:
            return work(stanza)
        try:
            result = work(stanza)
        except Exception:
            failure = Failure()
            stanza.keep()  # the error reply is built when its turn comes
            return line.after(failure.raiseException)
        if isinstance(result, InLine):
            return result
        return line.after(lambda: result)

    def _drained(self, _: None) -> None:
        self._settling = False
        self._settle()

    def _line_cleared(self) -> None:
        """The history rows in flight are stored: the stanzas that waited for them go on."""
        self._turns.resume()
        self._settle()

    def _check_room_to_wait(self, stanza: Stanza) -> None:
        """Refuse a groupchat message when the room holds as many stanzas waiting as it may.

        Leaving, and whatever else is not a groupchat message, always waits:
        what bounds the room's memory is the traffic of its occupants.
        """
        held = self._turns.waiting + len(self._archive or ())
        if held >= self.service.settings.max_waiting_messages and stanza.kind == "message" and stanza.type == "groupchat":
            raise StanzaError("resource-constraint", "wait", text="too many messages are waiting to be stored; try again shortly")

    def _held(self) -> bool:
        """Whether a write is in flight or stanzas wait."""
        return not self._turns.idle or bool(self._archive)

    # -- entry points ------------------------------------------------------

    def handle_presence(self, stanza: Stanza) -> Any:
        if not self.exists:
            self._check_tombstone(stanza)
        self.last_activity = self.component.clock.seconds()
        return self._in_turn(self._presence, stanza)

    def handle_message(self, stanza: Stanza) -> Any:
        if not self.exists:
            self._check_tombstone(stanza)
        self.last_activity = self.component.clock.seconds()
        return self._in_turn(self._message, stanza)

    def _check_tombstone(self, stanza: Stanza) -> None:
        """Answer ``gone`` for a name whose persistent room was destroyed a while ago (see tombstones)."""
        try:
            self.service.tombstones.check(self.jid.node or "", stanza)
        except StanzaError:
            self._settle()
            raise

    def in_turn(self, work: Callable[[], Any]) -> Any:
        """Run ``work`` as one more stanza: after those before it, before those after it.

        For service admins' commands (destroying the room, an announcement),
        which must not overtake a write in flight. The room settles
        afterwards as after any stanza: one loaded only for the command, or
        that does not exist, leaves memory.
        """
        turn = Stanza(etree.Element(f"{{{ns.COMPONENT}}}iq"), "iq", self.component.jid, self.jid)
        return self._in_turn(lambda _: work(), turn)

    def handle_iq(self, stanza: Stanza) -> IQResult:
        if not self.exists:
            self._check_tombstone(stanza)
        if stanza.recipient.resource is not None:
            if not self.exists:
                self._settle()
                raise StanzaError("item-not-found", text="no such room")
            if self.dropped:
                raise moved(str(self.jid))
            if self._tenure is not None:
                self._tenure.check()  # a self-ping is answered only where the room is served
            # Answered by another client: the room must not wait for it.
            return self.room_features.iq_to_occupant(self, stanza)  # type: ignore[return-value]
        return self._in_turn(self._iq, stanza)  # type: ignore[no-any-return]

    def handle_error(self, stanza: Stanza) -> None:
        result = self._in_turn(self._bounced, stanza)
        if isinstance(result, defer.Deferred):
            result.addErrback(lambda failure: log.failure("{room}: handling a bounce failed", failure, room=str(self.jid)))

    def _iq(self, stanza: Stanza) -> IQResult:
        if not self.exists:
            raise StanzaError("item-not-found", text="no such room")
        payload = stanza.payload()
        if payload is not None and payload.getnext() is None:
            handler = self.room_features.iq.get((stanza.element.get("type", ""), cast(str, payload.tag)))
            if handler is not None:
                result = handler(self, stanza)
                if inspect.iscoroutine(result):
                    return defer.ensureDeferred(result)
                return result  # type: ignore[return-value]
        return super().handle_iq(stanza)

    # -- who is who --------------------------------------------------------

    def affiliation_of(self, jid: JID) -> str:
        """The affiliation of a user; service admins are owners everywhere."""
        if self.service.is_admin(jid):
            return "owner"
        return self.affiliations.get(jid)

    def occupant_jid(self, nick: str) -> str:
        """The room JID of a nick."""
        return f"{self.jid}/{nick}"

    def sees_real_jids(self, occupant: Occupant) -> bool:
        """Whether an occupant may see other occupants' real JIDs."""
        return self.config.whois == "anyone" or occupant.role == "moderator"

    def role_for(self, affiliation: str) -> str:
        """The role a user of this affiliation gets on entering."""
        return default_role(affiliation, moderated=self.config.moderated, members_only=self.config.members_only)

    def presence_shown(self, role: str) -> bool:
        """Whether the others are sent the presence of an occupant of ``role`` ('none': one leaving)."""
        return all(feature.broadcasts_presence(self, role) for feature in self.room_features.presence_filters)

    # -- sending -----------------------------------------------------------

    def send_bytes(self, data: Piece, count: int = 1) -> None:
        """Send serialised stanzas (``count`` of them); with live state, once what the stanza in hand changed is stored."""
        tenure = self._tenure
        if tenure is None or not tenure.hold(lambda: self.component.send_bytes(data, count)):
            self.component.send_bytes(data, count)

    def send(self, element: etree._Element) -> None:
        """Send one stanza as it is (addressed by its ``to``); with live state, as :meth:`send_bytes` does."""
        tenure = self._tenure
        if tenure is None or not tenure.hold(lambda: self.component.send(element)):
            self.component.send(element)

    def send_to_occupant(self, occupant: Occupant, data: Broadcast) -> None:
        """Send to every session of an occupant."""
        self.send_bytes(data.to_all(occupant.addresses), len(occupant.addresses))

    def broadcast(self, element: etree._Element) -> None:
        """Send one stanza to every session of every occupant: serialised once, built as the link drains."""
        self.reflect(Broadcast(element))

    def reflect(self, data: Broadcast) -> None:
        """Send a serialised stanza to every session of every occupant."""
        self.send_to_each(data, self.occupants.addresses())

    def send_to_each(self, data: Broadcast, addresses: Sequence[bytes]) -> None:
        """Send a serialised stanza to each of ``addresses``: through the server's multicast service if it has one."""
        self.send_bytes(*self.component.addressed(data, addresses))

    def _send_to_others(
        self, occupant: Occupant, full: Callable[[], Broadcast], anonymous: Callable[[], Broadcast]
    ) -> None:
        """An occupant's presence for everyone else: with its real JID to those who may see it (§7.2.3)."""
        if self.config.whois == "anyone":
            seen, unseen = _without(self.occupants.addresses(), occupant.addresses), []
        else:
            moderators, others = self.occupants.addresses_by_role()
            seen, unseen = _without(moderators, occupant.addresses), _without(others, occupant.addresses)
        if seen:
            self.send_to_each(full(), seen)
        if unseen:
            self.send_to_each(anonymous(), unseen)

    def publish(
        self, occupant: Occupant, base: etree._Element, news: PresenceNews = NO_NEWS, *,
        self_sessions: Iterable[JID] | None = None, shown_before: bool = False,
    ) -> None:
        """Tell the room about an occupant's presence (§7.2.3): others, then the occupant itself.

        Everyone who may see real JIDs gets the item with the occupant's
        JID; the others without. The occupant's own sessions get it with
        status 110 and the news' ``self_codes``. The others hear of an occupant whose
        role they are not shown only if ``shown_before`` (its role was), as
        gone.
        """
        self._from_occupant(occupant, base)
        affiliation = news.affiliation or self.affiliation_of(occupant.bare)
        codes = news.codes
        real = str(occupant.main)
        gone = not self.presence_shown(occupant.role)

        def variant(jid: str | None, extra: Iterable[int] = (), gone: bool = False) -> Broadcast:
            element = copy.deepcopy(base)
            if gone:
                element.set("type", "unavailable")
            entry = item(affiliation, occupant.role, jid=jid, nick=news.nick, actor_nick=news.actor, reason=news.reason)
            element.append(user_x([entry], codes | set(extra)))
            return Broadcast(element)

        if shown_before or not gone:
            self._send_to_others(occupant, lambda: variant(real, gone=gone), lambda: variant(None, gone=gone))
        mine = variant(real, {110, *news.self_codes})
        sessions = occupant.addresses if self_sessions is None else [address(s) for s in self_sessions]
        if sessions:
            self.send_bytes(mine.to_all(sessions), len(sessions))

    def _from_occupant(self, occupant: Occupant, presence: etree._Element) -> etree._Element:
        """An occupant's presence, addressed from its room JID and decorated by the features."""
        presence.set("from", self.occupant_jid(occupant.nick))
        for feature in self.room_features.presence_decorators:
            feature.decorate_presence(self, occupant, presence)
        return presence

    def shown(self, occupant: Occupant, *, with_jid: bool) -> Broadcast:
        """An occupant's current presence as others see it, serialised once until it changes."""
        index = 0 if with_jid else 1
        cached = occupant.shown[index]
        if cached is None:
            element = self._from_occupant(occupant, occupant.presence())
            jid = str(occupant.main) if with_jid else None
            element.append(user_x([item(self.affiliation_of(occupant.bare), occupant.role, jid=jid)]))
            cached = occupant.shown[index] = Broadcast(element)
        return cached

    def publish_current(self, occupant: Occupant, self_codes: Iterable[int] = ()) -> None:
        """Tell the room an occupant's current presence, with no news but ``self_codes`` to itself."""
        if self.presence_shown(occupant.role):
            self._send_to_others(
                occupant, lambda: self.shown(occupant, with_jid=True), lambda: self.shown(occupant, with_jid=False)
            )
        element = self._from_occupant(occupant, occupant.presence())
        entry = item(self.affiliation_of(occupant.bare), occupant.role, jid=str(occupant.main))
        element.append(user_x([entry], {110, *self_codes}))
        self.send_bytes(Broadcast(element).to_all(occupant.addresses), len(occupant.addresses))

    def send_occupant_list(self, to: JID, viewer: Occupant | None) -> None:
        """Send every other occupant's current presence to one client (§7.2.3), built as the link drains."""
        to_address = address(to)
        with_jid = viewer is not None and self.sees_real_jids(viewer)
        newcomer = viewer is None or self.occupants.by_nick(viewer.nick) is not viewer
        hidden = {role for role in ("visitor", "participant", "moderator") if not self.presence_shown(role)}
        if newcomer and len(self.occupants) >= KEEP_LISTS_FROM and not hidden:
            # Into a crowded room: everyone's presences are kept as one list with gaps for the address.
            data: bytes | Spliced = splice(self._occupant_list(with_jid), to_address)
            count = len(self.occupants)
        else:
            index = 0 if with_jid else 1
            # Those whose role is not shown are left out, but for the user's own other occupants (as Prosody).
            listed = [
                other for other in self.occupants.values()
                if other is not viewer and (other.role not in hidden or other.bare == to.bare)
            ]
            data = b"".join(
                (other.shown[index] or self.shown(other, with_jid=with_jid)).to_address(to_address) for other in listed
            )
            count = len(listed)
        if data:
            self.send_bytes(data, count)
        for feature in self.room_features.occupant_list_extras:
            feature.extend_occupant_list(self, to, viewer)

    def _occupant_list(self, with_jid: bool) -> list[bytes]:
        index = 0 if with_jid else 1
        segments = self.occupants.lists[index]
        if segments is None:
            segments = [b""]
            for other in self.occupants.values():
                self._add_to_list(segments, other, with_jid)
            self.occupants.lists[index] = segments
        return segments

    def _add_to_list(self, segments: list[bytes], occupant: Occupant, with_jid: bool) -> None:
        shown = occupant.shown[0 if with_jid else 1] or self.shown(occupant, with_jid=with_jid)
        head, _, tail = shown.to_address(_GAP).partition(_GAP)
        segments[-1] += head
        segments.append(tail)

    def remove(self, occupant: Occupant, codes: Iterable[int], *, affiliation: str | None = None,
               actor: str | None = None, reason: str | None = None, status: str | None = None) -> None:
        """Take an occupant out of the room and tell everyone (kick, ban, lost membership)."""
        self.occupants.remove(occupant)
        shown = self.presence_shown(occupant.role)
        occupant.role = "none"
        base = etree.Element(f"{{{ns.COMPONENT}}}presence", type="unavailable", nsmap={None: ns.COMPONENT})
        if status is not None:
            etree.SubElement(base, f"{{{ns.COMPONENT}}}status").text = status
        news = PresenceNews(codes, affiliation=affiliation, actor=actor, reason=reason)
        self.publish(occupant, base, news, shown_before=shown)
        self._left(occupant)

    def _left(self, occupant: Occupant) -> None:
        for feature in self.room_features.left:
            feature.on_leave(self, occupant)

    # -- presence ------------------------------------------------------------

    def _presence(self, stanza: Stanza) -> Any:
        kind = stanza.type
        if kind == "probe" and stanza.recipient.resource is not None:
            self._probe(stanza)
            return None
        if kind not in (None, "unavailable"):
            return None  # subscriptions mean nothing to a room
        sender = stanza.sender
        if kind is None:
            self.service.limits.check_presence(self.jid.node or "", sender)
        occupant = self.occupants.by_real(sender)
        nick = stanza.recipient.resource
        if kind == "unavailable":
            if occupant is not None:
                self._leave(occupant, sender, stanza)
            return None
        if occupant is None:
            if nick is None:
                raise StanzaError("jid-malformed", text="a nick is needed to enter a room")
            return self._enter(stanza, nick)
        if nick is None or nick == occupant.nick:
            x = stanza.find(X_MUC)
            if x is not None and nick is not None:
                # A client that lost track of the room enters again: it gets the
                # whole entry sequence, the others a presence update.
                return self._add_session(occupant, self._join(stanza, nick, x, new_occupant=False))
            self._update(occupant, sender, stanza)
            return None
        return self._change_nick(occupant, sender, stanza, nick)

    def _probe(self, stanza: Stanza) -> None:
        """A probe to an occupant JID: that occupant's presence, to the occupant who asked (as Prosody)."""
        viewer = self.occupants.by_real(stanza.sender)
        if viewer is None:
            raise StanzaError("not-acceptable", "cancel", text="you are not in this room")
        nick = stanza.recipient.resource or ""
        target = self.occupants.by_nick(nick)
        if target is None:
            gone = etree.Element(f"{{{ns.COMPONENT}}}presence", type="unavailable", nsmap={None: ns.COMPONENT})
            gone.set("from", self.occupant_jid(nick))
            gone.append(user_x([item("none", "none")]))
            self.send_bytes(Broadcast(gone).to(stanza.sender))
            return
        self.send_bytes(self.shown(target, with_jid=self.sees_real_jids(viewer)).to(stanza.sender))

    def _check_nick(self, nick: str, sender: JID) -> None:
        for feature in self.room_features.nick_checks:
            feature.check_nick(self, sender, nick)

    def _template(self, stanza: Stanza) -> bytes:
        return presence_template(stanza.element, self.service.limits.settings.max_presence_bytes)

    def _nick_changed(self, stanza: Stanza, nick: str) -> bool:
        raw = (stanza.element.get("to") or "").partition("/")[2]
        return raw != nick

    def _join(self, stanza: Stanza, nick: str, x: etree._Element | None, **kinds: bool) -> Join:
        password = text_of(x, "password", MUC) if x is not None else None
        return Join(stanza, stanza.sender, nick, self.affiliation_of(stanza.sender), x, password, **kinds)

    def _enter(self, stanza: Stanza, nick: str) -> Any:
        sender = stanza.sender
        key = check_nick(nick, self.service.settings.max_nick_length)
        x = stanza.find(X_MUC)
        if not self.exists:
            self.service.check_creation(sender)
            return self._create(self._join(stanza, nick, x, creates=True))
        join = self._join(stanza, nick, x)
        if self.locked and join.affiliation != "owner":
            raise StanzaError("item-not-found", text="the room is locked until its owner configures it")
        for feature in self.room_features.entry_checks:
            feature.check_entry(self, join)
        holder = self.occupants.by_key(key)
        if holder is not None:
            if holder.bare != sender.bare:
                raise StanzaError("conflict", text="that nick, or one that looks like it, is in use")
            # Another client of the same user: it joins the occupant, under the occupant's nick.
            return self._add_session(holder, attrs.evolve(join, new_occupant=False))
        self._check_nick(nick, sender)
        for feature in self.room_features.seat_checks:
            feature.check_seat(self, join)
        occupant = Occupant(nick, sender, self.role_for(join.affiliation), self._template(stanza))
        self._seat(occupant, join)
        return None

    def _create(self, join: Join) -> None:
        sender = join.sender
        self.exists = True
        self.affiliations.set(sender.bare, "owner")
        # Clients that do not speak MUC get an instant room (§7.2.1, like Prosody).
        self.locked = join.x is not None
        occupant = Occupant(join.nick, sender, "moderator", self._template(join.stanza))
        self._seat(occupant, attrs.evolve(join, affiliation="owner"))
        if self.locked:
            self._lock_until = self.component.clock.seconds() + self.service.settings.lock_seconds
            self._set_timer(self.service.settings.lock_seconds, self._lock_expired)
        self.service.room_created(self, sender)

    def _seat(self, occupant: Occupant, join: Join) -> None:
        greetings = self._greetings(join)
        self.send_occupant_list(join.sender, occupant)
        self.occupants.add(occupant)
        # The newcomer goes last in the kept occupant lists, rather than rebuilding them.
        for index, segments in enumerate(self.occupants.lists):
            if segments is not None:
                self._add_to_list(segments, occupant, with_jid=index == 0)
        if not self.locked:
            self._cancel_timer()  # an idle room is in use again
        self._welcome(occupant, join, greetings)

    def _add_session(self, occupant: Occupant, join: Join) -> None:
        greetings = self._greetings(join)
        self.send_occupant_list(join.sender, occupant)
        self.occupants.add_session(occupant, join.sender, self._template(join.stanza))
        self._welcome(occupant, join, greetings)

    def _greetings(self, join: Join) -> list[Callable[[], None]]:
        """What the features send the newcomer after its presence (the history, the subject); asked before anything is sent."""
        found = (feature.greeting(self, join) for feature in self.room_features.greeters)
        return [greet for greet in found if greet is not None]

    def _welcome(self, occupant: Occupant, join: Join, greetings: list[Callable[[], None]]) -> None:
        """The newcomer's own presence (§7.2.2, with its status codes), then the features' greetings (history, subject)."""
        codes = {110}
        for feature in self.room_features.entry_codes:
            codes.update(feature.entry_codes(self, join))
        if join.creates:
            codes.add(201)
        if self._nick_changed(join.stanza, occupant.nick):
            codes.add(210)
        self.publish_current(occupant, codes)
        for greet in greetings:
            greet()
        for feature in self.room_features.joined:
            feature.on_join(self, occupant, join)

    def _update(self, occupant: Occupant, sender: JID, stanza: Stanza) -> None:
        self.occupants.add_session(occupant, sender, self._template(stanza))
        self.publish_current(occupant)

    def _leave(self, occupant: Occupant, sender: JID, stanza: Stanza) -> None:
        base = etree.fromstring(self._template(stanza), PARSER)
        base.set("type", "unavailable")
        if self.occupants.remove_session(occupant, sender):
            shown = self.presence_shown(occupant.role)
            occupant.role = "none"
            self.publish(occupant, base, self_sessions=[sender], shown_before=shown)
            self._left(occupant)
            return
        # Another client still holds the nick: only the one leaving hears of it.
        self._from_occupant(occupant, base)
        base.set("to", str(sender))
        entry = item(self.affiliation_of(occupant.bare), "none", jid=str(sender))
        base.append(user_x([entry], [110]))
        self.send(base)

    def _change_nick(self, occupant: Occupant, sender: JID, stanza: Stanza, nick: str) -> None:
        holder = self.occupants.by_key(check_nick(nick, self.service.settings.max_nick_length))
        # Changing to a look-alike of one's own nick (another case, say) is no conflict.
        if holder is not None and holder is not occupant:
            raise StanzaError("conflict", text="that nick, or one that looks like it, is in use")
        self._check_nick(nick, sender)
        gone = etree.Element(f"{{{ns.COMPONENT}}}presence", type="unavailable", nsmap={None: ns.COMPONENT})
        self.publish(occupant, gone, PresenceNews([303], nick=nick))
        self.occupants.rename(occupant, nick)
        self.occupants.add_session(occupant, sender, self._template(stanza))
        codes = [210] if self._nick_changed(stanza, nick) else []
        self.publish_current(occupant, codes)

    # -- messages --------------------------------------------------------------

    def _message(self, stanza: Stanza) -> Any:
        if stanza.recipient.resource is not None:
            return self.room_features.message_to_occupant(self, stanza)
        if not self.exists:
            raise StanzaError("item-not-found", text="no such room")
        element = stanza.element
        if stanza.type == "groupchat":
            self.service.limits.check_groupchat(self.jid.node or "", stanza.sender)
            # One pass over the children answers every question below.
            tags = {child.tag for child in element}
            claimed = self.room_features.claim(tags)
            if claimed is not None:
                handler = self.room_features.groupchat[claimed]
                child = element.find(claimed)
                assert child is not None  # claimed is the tag of one of its children
                return defer.ensureDeferred(handler(self, stanza, child))
            return self._groupchat(stanza, tags)
        for tag, handlers in self.room_features.messages.items():
            child = element.find(tag)
            if child is not None:
                for handle in handlers:
                    result = handle(self, stanza, child)
                    if result is not NOT_MINE:
                        return result
        raise StanzaError("bad-request", text="send groupchat messages to the room, private messages to an occupant")

    def _groupchat(self, stanza: Stanza, tags: set[Any]) -> InLine | None:
        occupant = self.occupants.by_real(stanza.sender)
        if occupant is None:
            raise StanzaError("not-acceptable", text="only occupants may speak in the room")
        if ROLE_RANK[occupant.role] < ROLE_RANK["participant"]:
            raise StanzaError("forbidden", text="visitors have no voice in this moderated room")
        # The element was parsed for this stanza alone: reflect it as it is, readdressed.
        element = stanza.element
        room = str(self.jid)
        strip_claims(element, tags, self.jid)
        element.set("from", self.occupant_jid(occupant.nick))
        for feature in self.room_features.message_decorators:
            feature.decorate_message(self, occupant, element)
        stanza_id, mark = self.new_stanza_id()
        reflection = Broadcast(element, self.message_children(occupant) + mark, restore=False)
        if reflection.size + _LONGEST_ADDRESS > self.component.max_outgoing_bytes:
            element.set("to", room)  # for the log line that fits() writes
        if not self.component.fits(reflection.size + _LONGEST_ADDRESS, element):
            limit = self.component.max_outgoing_bytes
            raise StanzaError("policy-violation", text=f"the message is too large to reflect (limit {limit} bytes)")
        if self.history.length and _BODY in tags and not tags & _NOT_KEPT:
            entry = HistoryEntry(reflection, self.component.clock.seconds(), room, stanza_id)
            if self.stored and self.service.store is not None:
                return self._archive_then_reflect(stanza, entry, occupant)
            self.history.add(entry)
            self.service.messages_archived += 1
        if self._archive:
            # Messages before this one wait for their rows: its reflection waits behind them.
            return self._archive.after(lambda: self.reflect(reflection))
        self.reflect(reflection)
        return None

    def message_children(self, occupant: Occupant) -> bytes:
        """What the features add, serialised, to each groupchat message from ``occupant``."""
        features = self.room_features.message_children
        if len(features) == 1:
            # The usual case (occupant ids alone), spared a generator on every message.
            return features[0].message_children(self, occupant)
        return b"".join(feature.message_children(self, occupant) for feature in features)

    def occupant_id(self, occupant: Occupant) -> str | None:
        """The room's occupant-id (XEP-0421) of ``occupant``; None when the service gives none."""
        service = self.service
        return service.occupant_ids.of(self.jid, occupant.bare) if service.settings.occupant_id else None

    def new_stanza_id(self) -> tuple[str, bytes]:
        """A new XEP-0359 stanza-id (the archive id of a stored room's message) and its element, serialised."""
        stanza_id = f"{_ID_PREFIX}{next(_ids):x}"
        # The id is ours (hex and a dash) and needs no escaping; the room's address was escaped once.
        return stanza_id, self._stanza_id_head + stanza_id.encode() + b'"/>'

    def _archive_then_reflect(self, stanza: Stanza, entry: HistoryEntry, occupant: Occupant) -> InLine:
        """A persistent room's message: reflected once it is in the archive, never before.

        Reflected before a write that then fails, the message would be shown
        as archived and be missing from every later history; refused, the
        sender is told to wait (resource-constraint) and nobody sees it.
        Messages that come while a write is in flight go in the next one.
        """
        stanza.keep()  # the error reply, should the write fail, is built after the handler returns
        record = archive_record(
            stanza, entry, occupant.nick, occupant_id=self.occupant_id(occupant), jid_public=not self.config.anonymous
        )
        if self._archive is None:
            writer = self.service.history_writer
            assert writer is not None
            self._archive = Archive(
                self.jid.node or "", writer, self._history_refused, self._line_cleared, self.storage.lease
            )

        def archived() -> None:
            self.history.add(entry)
            self.service.messages_archived += 1
            self.reflect(entry.message)

        return self._archive.add(record, archived)

    def _history_refused(self, error: StorageError) -> StanzaError:
        if isinstance(error, LeaseLost):
            self.drop()
        return self.storage.refused("history", error)

    # -- ghosts --------------------------------------------------------------------

    def _bounced(self, stanza: Stanza) -> None:
        if stanza.kind not in ("message", "presence"):
            return
        occupant = self.occupants.by_real(stanza.sender)
        if occupant is None:
            return
        error = StanzaError.from_stanza(stanza.element)
        if error.condition not in KICKABLE_ERRORS and error.condition != "undefined-condition":
            return
        status = "Kicked: " + error.condition.replace("-", " ")
        if self.occupants.remove_session(occupant, stanza.sender):
            shown = self.presence_shown(occupant.role)
            occupant.role = "none"
            base = etree.Element(f"{{{ns.COMPONENT}}}presence", type="unavailable", nsmap={None: ns.COMPONENT})
            etree.SubElement(base, f"{{{ns.COMPONENT}}}status").text = status
            # The ghost itself cannot hear it; everyone else must.
            self.publish(occupant, base, PresenceNews([307, 333]), self_sessions=(), shown_before=shown)
            self._left(occupant)

    # -- discovery --------------------------------------------------------------

    def disco_identities(self, node: str | None) -> tuple[Identity, ...]:
        if node is not None:
            return ()
        return (Identity("conference", "text", self.config.name or self.jid.node),)

    def disco_features(self, node: str | None) -> frozenset[str]:
        features = {MUC, STABLE_ID, *self.room_features.disco_features(self)}
        return super().disco_features(node) | features

    def disco_forms(self, node: str | None) -> list[etree._Element]:
        return [self.room_features.roominfo(self, len(self.occupants))]

    def disco_items(self, stanza: Stanza, node: str | None) -> list[Item]:
        # Occupants' room JIDs are listed to occupants only: they already see them (those whose presence they are shown).
        viewer = self.occupants.by_real(stanza.sender)
        if viewer is None:
            return []
        return [
            Item(self.occupant_jid(o.nick)) for o in self.occupants
            if o.bare == viewer.bare or self.presence_shown(o.role)
        ]

    @iq_handler("get", f"{{{ns.DISCO_INFO}}}query")
    def _room_info(self, stanza: Stanza) -> IQResult:
        node = stanza.element[0].get("node")
        answer = self.room_features.info_nodes.get(node) if node is not None else None
        if answer is not None:
            return answer(self, stanza)  # type: ignore[return-value]
        return self._disco_info(stanza)

    # -- configuration -------------------------------------------------------------

    def config_form(self) -> Form:
        """The configuration form, filled with the current settings (each feature's fields)."""
        return self.room_features.config_form(self)

    async def configure(self, x: etree._Element, by: JID | None = None) -> AnswerFirst:
        """Apply a form submitted ``by`` an owner (§10.2): read by every feature, stored, then applied.

        Stored first: should the database refuse, the room goes on with the
        settings it had, as the owner's error reply says. The answer carries
        the announcement of the change (its status codes), which goes to the
        room once the owner has its reply, as in Prosody.
        """
        old = self.config
        submission = ConfigSubmission.parse(x)
        new = old if submission is None else self.room_features.read_config(self, submission)
        # Affiliations the form sets (its lists of admins and owners) are stored with the settings.
        edits = [] if submission is None else self.room_features.read_affiliations(self, submission)
        rows = [row for _, changes in edits for row in changes]
        self._check_affiliations(rows, by)
        if new.persistent and not self.stored:
            await self.storage.store_room(new, self.affiliations, self.subject, self.history, rows)
        elif not new.persistent and self.stored:
            await self.storage.forget()
        elif self.stored and (new != old or rows):
            await self.storage.save_config(new, rows)
        self.config = new
        if self.locked:
            self.locked = False
            self._lock_until = None
            self._cancel_timer()
        for feature, changes in edits:
            feature.on_affiliations_configured(self, changes)
        codes = self.room_features.config_changed(self, old, new)
        self.service.room_configured(self)
        announce = etree.Element(
            f"{{{ns.COMPONENT}}}message", {"from": str(self.jid), "type": "groupchat"}, nsmap={None: ns.COMPONENT}
        )
        announce.append(user_x(codes=codes))
        return AnswerFirst(None, (lambda: self.broadcast(announce)) if codes else _nothing)

    # -- persistence -------------------------------------------------------------

    @property
    def lease(self) -> Lease | None:
        """The lease the room is served under with ``[cluster]`` (None: a single instance)."""
        return self.storage.lease

    @property
    def stored(self) -> bool:
        """True while the room is in storage (persistent rooms, with a store)."""
        return self.storage.stored

    def reflect_groupchat(self, stanza: Stanza) -> Any:
        """Reflect (and archive) a groupchat message from an occupant as any other; await what it returns."""
        return self._groupchat(stanza, {child.tag for child in stanza.element})

    async def change_settings(self, **changes: Any) -> None:
        """Change settings that no form field holds (the room's vCard): stored first when the room is, then in effect."""
        new = attrs.evolve(self.config, **changes)
        if self.stored:
            await self.storage.save_config(new)
        self.config = new

    async def store_subject(self, subject: str, nick: str, at: float | None, record: HistoryRecord | None) -> None:
        """Write a new subject, set by ``nick`` at ``at``, when the room is stored, in one transaction with its archive row."""
        await self.storage.store_subject(subject, nick, at, record)

    async def store_affiliations(self, changes: list[AffiliationChange], by: JID | None = None) -> None:
        """Write affiliation changes ``by`` someone when the room is stored: in one transaction, all or none.

        Past ``max_affiliations``, refused whole, stored or not.
        """
        self._check_affiliations(changes, by)
        await self.storage.store_affiliations(changes)

    def _check_affiliations(self, changes: Sequence[AffiliationChange], by: JID | None) -> None:
        """Raise ``policy-violation`` when ``changes`` would leave the room more affiliations than it may hold.

        Every change of affiliations, from any feature, passes here before
        anything of it is stored or applied.
        """
        if changes:
            after = self.affiliations.count_after((parse_jid(row.jid), row.affiliation) for row in changes)
            self.service.limits.check_affiliations(len(self.affiliations), after, by)

    def restore(self, record: RoomRecord) -> None:
        """The room as it was stored: its settings and subject (its affiliations and history come after)."""
        self.config = RoomConfig.from_dict(record.config)
        if "archiving" not in record.config:  # stored before rooms had the setting
            self.config.archiving = self.service.settings.archive_by_default
        self.history.resize(min(self.config.history_length, self.service.settings.max_history))
        self.subject.set(record.subject, record.subject_from, record.subject_at)
        self.exists = True
        self.storage.stored = True

    # -- lifecycle ---------------------------------------------------------------

    def _settle(self) -> None:
        """After each stanza: vanish, schedule unloading, or stay."""
        if self.destroyed or not self._turns.idle or self._archive:
            return
        if not self.exists:
            self._unload()
        elif len(self.occupants) == 0:
            if not self.config.persistent:
                log.info("{room}: gone with its last occupant (a temporary room)", room=str(self.jid))
                self.vanish()
            elif self._timer is None:
                self._set_timer(self.service.settings.idle_unload_seconds, self._idle)

    def _set_timer(self, seconds: float, call: Callable[[], None]) -> None:
        self._cancel_timer()
        self._timer = self.component.clock.callLater(seconds, call)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _idle(self) -> None:
        self._timer = None
        if not self._held() and len(self.occupants) == 0 and not self.destroyed:
            log.info("{room}: unloaded from memory, empty for {seconds:g} s", room=str(self.jid),
                     seconds=self.service.settings.idle_unload_seconds)
            self._unload()

    def _lock_expired(self) -> None:
        self._timer = None
        if not self.locked or self.destroyed:
            return
        if self._held():
            # The owner's configuration may be on its way to the database:
            # look again once it has landed (and unlocked the room, or not).
            self._set_timer(1.0, self._lock_expired)
            return
        if self._tenure is not None:
            # Its occupants' rows go with it, stored before they are told.
            done = defer.maybeDeferred(self.in_turn, lambda: self.destroy(None, "the room was not configured in time"))
        else:
            done = defer.ensureDeferred(self.destroy(None, "the room was not configured in time"))
        done.addErrback(lambda failure: log.failure("{room}: destroying a locked room failed", failure, room=str(self.jid)))

    def _unload(self) -> None:
        self._cancel_timer()
        if self.service.component.router.loaded(self.jid.node or "") is self:
            self.service.component.router.unload(self.jid.node or "")
        if self._tenure is not None:
            self._tenure.end()

    def lease_lost(self, lease: Lease) -> None:
        """Another instance serves the room now (or this one could not renew its lease): :meth:`drop` it."""
        if self._tenure is not None and self._tenure.lease == lease:
            self.drop()

    def drop(self) -> None:
        """Leave memory without a word to anyone: what the occupants were told is in the database for the next server."""
        if self.dropped:
            return
        self.dropped = True
        log.info("{room}: let go, another instance serves it now", room=str(self.jid))
        self._unload()

    def vanish(self) -> None:
        """Forget a room in memory (a temporary room whose last occupant left)."""
        self.destroyed = True
        self.service.room_gone(self)
        self._unload()

    def clear(self, extra: etree._Element | None = None, codes: Iterable[int] = ()) -> None:
        """Remove every occupant, each told with its own unavailable presence.

        It is the occupant's own presence: it says so (110) and carries the
        occupant's real JID, as any presence of its own does (§7.2.3); the
        affiliation is 'none', as in XEP-0045's examples (§10.9).
        """
        for occupant in self.occupants:
            self.occupants.remove(occupant)
            base = etree.Element(f"{{{ns.COMPONENT}}}presence", type="unavailable", nsmap={None: ns.COMPONENT})
            self._from_occupant(occupant, base)
            x = user_x([item("none", "none", jid=str(occupant.main))], {110, *codes})
            if extra is not None:
                x.insert(1, extra)
            base.append(x)
            data = Broadcast(base)
            self.send_to_occupant(occupant, data)

    async def destroy(self, alternate: str | None, reason: str | None, password: str | None = None) -> None:
        """Destroy the room (§10.9): forget it in storage, then tell every occupant and forget it in memory.

        Should the database refuse the delete, the room goes on as it was and
        nobody but the requester (who gets the error) hears of it: told of a
        destruction that was not stored, occupants would see the room come
        back on their next visit.
        """
        tombstones = self.service.tombstones
        tombstone = (
            tombstones.stone(self.service.settings.tombstone_seconds, reason, alternate)
            if self.config.persistent
            else None
        )
        await self.storage.forget("destroy", tombstone)
        if tombstone is not None:
            tombstones.place(self.jid.node or "", tombstone)
        element = etree.Element(f"{{{MUC_USER}}}destroy", nsmap={None: MUC_USER})
        if alternate:
            element.set("jid", alternate)
        if reason:
            etree.SubElement(element, f"{{{MUC_USER}}}reason").text = reason
        if password:
            etree.SubElement(element, f"{{{MUC_USER}}}password").text = password
        self.clear(element)
        self.locked = False
        self.exists = False
        self.vanish()
        log.info("{room}: destroyed", room=str(self.jid))

    def on_shutdown(self) -> None:
        if self.storage.lease is not None:
            # One of several instances: its occupants stay, in the database, for whoever serves the room next.
            return
        self.clear(codes=[332])

    # -- live state ----------------------------------------------------------------

    def keep_live(self, store: MucStore, leases: Leases | None, lease: Lease | None, state: LiveState | None) -> None:
        """Store the room's live state before announcing it, under *lease* in a cluster; *state* is what was stored."""
        self.storage.lease = lease
        self._tenure = Tenure(
            store, leases, str(self.jid), self.node, lease, LiveTracker(state), self._live_changes, self.drop,
            self.storage.track,
        )
        self.occupants.record_changes()

    def carry_on(self, state: LiveState) -> None:
        """The room as its last server left it: occupants, subject, lock, and a temporary room's settings."""
        row = state.room
        if row is not None:
            if row.config is not None and not self.stored:
                self.config = RoomConfig.from_dict(row.config)
                self.history.resize(min(self.config.history_length, self.service.settings.max_history))
                for bare, affiliation, reason, nick in row.affiliations or ():
                    jid = parse_stored_jid(bare, table="muc_live_rooms", row={"node": self.node, "jid": bare})
                    if jid is not None and affiliation in AFFILIATION_RANK:
                        self.affiliations.set(jid, affiliation, reason, nick)
                self.exists = True
            if self.exists:
                self.subject.set(row.subject, row.subject_from, row.subject_at)
            if self.exists and row.locked_until is not None:
                self.locked = True
                self._lock_until = row.locked_until
                self._set_timer(max(0.0, row.locked_until - self.component.clock.seconds()), self._lock_expired)
        if self.exists:
            for stored in state.occupants:
                occupant = restore_occupant(stored, str(self.jid))
                if occupant is not None:
                    self.occupants.add(occupant)
        self.occupants.take_changes()  # what was just read back is stored already

    def _live_row(self) -> LiveRoom | None:
        """The room's row as it should be stored now; None once it is gone (or goes with its last occupant)."""
        if not self.exists or self.destroyed or (not self.config.persistent and not len(self.occupants)):
            return None
        stored = self.stored
        subject = self.subject
        return LiveRoom(
            subject=subject.text,
            subject_from=subject.nick,
            subject_at=subject.seconds,
            locked_until=self._lock_until if self.locked else None,
            config=None if stored else self.config.to_dict(),
            affiliations=None if stored else tuple(
                sorted((str(jid), entry.affiliation, entry.reason, entry.nick) for jid, entry in self.affiliations.items())
            ),
        )

    def _live_changes(self) -> LiveChanges:
        tenure = self._tenure
        assert tenure is not None
        changed = [(nick, None if o is None else live_occupant(o)) for nick, o in self.occupants.take_changes()]
        return tenure.tracker.changes(changed, self._live_row())


def _nothing() -> None:
    """Nothing follows the answer."""


def _joins_line(stanza: Stanza, features: Registry) -> bool:
    """Whether a stanza is handled while messages wait for their history rows, rather than after.

    A groupchat message to the room changes nothing but the history (which
    waits in line anyway); a message a feature handles itself
    (``groupchat_handlers``: a subject change, a retraction) is a write of its own.
    """
    if stanza.kind != "message" or stanza.type != "groupchat" or stanza.recipient.resource is not None:
        return False
    return features.claim({child.tag for child in stanza.element}) is None


def _holds_turn(result: defer.Deferred[Any]) -> bool:
    """A stanza's Deferred holds the room's turn, except a message waiting in line for the rows before it."""
    return not isinstance(result, InLine)


def _without(addresses: list[bytes], own: list[bytes]) -> list[bytes]:
    """``addresses`` less an occupant's own sessions, which sit next to each other in it."""
    if not own:
        return addresses
    try:
        start = addresses.index(own[0])
    except ValueError:
        return addresses
    return addresses[:start] + addresses[start + len(own):]
