"""Presence for hosted entities: their own availability, their subscriptions, their contacts' resources.

The server keeps presence and rosters for its own accounts only. For a
``node@component`` entity the component is the server, so
:class:`PresenceEntity` does for it what RFC 6121 §3 and §4 ask of a server:

- it moves the entity's :class:`~component.roster.Roster` through the
  subscription state machine for the subscription stanzas that arrive and
  for those the entity's code sends, answers requests by the entity's
  policy (approve, deny, or ask its code, which may answer later), and
  writes every change before the stanza that announces it leaves;
- it broadcasts the entity's availability to contacts subscribed to it,
  answers their probes, and retracts it with ``unavailable`` from everyone
  who was told it is available (the host's ``send_presence`` remembers
  directed presence in a :class:`~component.directed.DirectedPresence`);
- it tracks which resources of each contact are online;
- after each handshake it re-announces the entity's presence and probes
  the contacts it is subscribed to, since the server pushes nothing to a
  component that (re)connects; on a clean shutdown it says ``unavailable``.

Entity code subclasses :class:`PresenceEntity` and calls :meth:`set_presence`,
:meth:`subscribe`, :meth:`approve`... and overrides the ``on_*`` hooks it needs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import attrs
from lxml import etree
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from component import namespaces as ns
from component.entity import Entity
from component.errors import StanzaError
from component.jid import JID
from component.roster import Roster, RosterView
from component.stanza import Stanza, presence, text_of
from component.subscription import Change, Subscription

if TYPE_CHECKING:
    from component.host import Host

__all__ = ["SHOW_VALUES", "Policy", "PresenceEntity", "PresenceInfo"]

log = Logger()

#: Subscription requests from strangers an entity keeps waiting, at most.
MAX_PENDING_REQUESTS = 1000
#: The longest request kept as it came; longer ones are kept without their payload.
MAX_REQUEST_CHARS = 4096
_NONE = Subscription("none")

#: The values of ``<show/>`` (RFC 6121 §4.7.2.1); no ``<show/>`` means plainly available.
SHOW_VALUES = frozenset({"away", "chat", "dnd", "xa"})

#: How an entity answers inbound subscription requests.
Policy: TypeAlias = Literal["approve", "deny", "ask"]

#: What ``on_subscription_request`` may return: an answer now, or later.
Answer: TypeAlias = "bool | defer.Deferred[bool | None] | None"


def _elements(value: Iterable[etree._Element]) -> tuple[etree._Element, ...]:
    return tuple(value)


@attrs.frozen
class PresenceInfo:
    """One resource's availability: show, status, priority and extension payloads (caps, ...)."""

    show: str | None = None
    status: str | None = None
    priority: int = 0
    payload: tuple[etree._Element, ...] = attrs.field(default=(), converter=_elements, eq=False)

    @classmethod
    def from_element(cls, element: etree._Element) -> PresenceInfo:
        """Read an available ``<presence/>``; malformed show or priority read as the defaults."""
        show = text_of(element, "show")
        priority_text = text_of(element, "priority")
        try:
            priority = int(priority_text or 0)
        except ValueError:
            priority = 0
        payload = tuple(
            child
            for child in element
            if isinstance(child.tag, str) and etree.QName(child).namespace != ns.COMPONENT
        )
        return cls(
            show if show in SHOW_VALUES else None,
            text_of(element, "status"),
            priority if -128 <= priority <= 127 else 0,
            payload,
        )

    def element(self, sender: JID, recipient: JID) -> etree._Element:
        """This availability as a ``<presence/>`` from ``sender`` to ``recipient``."""
        return presence(
            sender,
            recipient,
            show=self.show,
            status=self.status,
            priority=self.priority or None,
            payload=[copy.deepcopy(item) for item in self.payload],
        )


class PresenceEntity(Entity):
    """An entity that keeps its own roster and presence, as a server does for an account.

    Give it a :class:`Roster` loaded from a store to persist it (an
    in-memory one otherwise); entity code reads it through :attr:`roster`
    and changes it with :meth:`subscribe`, :meth:`unsubscribe`,
    :meth:`approve`, :meth:`deny` and :meth:`remove`. Every stanza it sends
    carries ``from`` (its bare JID) and ``to``.
    """

    #: How inbound subscription requests are answered: ``approve``, ``deny``,
    #: or ``ask`` (:meth:`on_subscription_request` decides). Set per class or per instance.
    policy: Policy = "ask"

    def __init__(self, component: Host, jid: JID, roster: Roster | None = None) -> None:
        super().__init__(component, jid.bare)
        self._roster = Roster.in_memory(self.jid) if roster is None else roster
        self._presence: PresenceInfo | None = None
        self._online: dict[JID, dict[str, PresenceInfo]] = {}
        self._offered_requests = False

    # -- what entity code reads -------------------------------------------

    @property
    def roster(self) -> RosterView:
        """The entity's roster, read-only: change it with subscribe, approve and the like."""
        return RosterView(self._roster)

    @property
    def presence(self) -> PresenceInfo | None:
        """The entity's own availability; None while it is offline."""
        return self._presence

    def resources_of(self, jid: JID) -> dict[str, PresenceInfo]:
        """The online resources of a contact, by resource ('' for presence from the bare JID)."""
        return dict(self._online.get(jid.bare, {}))

    def send_when_stored(self, element: etree._Element) -> None:
        """Send ``element`` once the roster changes made so far are stored, after the
        stanzas that announce them: a reply that reports the roster never runs ahead of it."""
        self._then(lambda: self.send(element))

    def settled(self) -> defer.Deferred[None]:
        """Fires once every roster change so far is stored and the stanzas behind it are sent."""
        return self._roster.written()

    def drain(self) -> defer.Deferred[None]:
        """Fires once every roster change so far has been written or has failed, and the
        stanzas behind it are sent; it never fails (a failed write was logged)."""
        return self._roster.drain()

    # -- hooks -----------------------------------------------------------

    def on_subscription_request(self, jid: JID) -> Answer:
        """A subscription request from ``jid`` under the ``ask`` policy.

        Return True to approve, False to deny, or None (or a Deferred) to
        answer later with :meth:`approve` or :meth:`deny`. The request stays
        pending, across restarts too, until answered; pending requests are
        offered again after the first handshake of the process.
        """
        return None

    def on_subscription_changed(self, jid: JID, old: Subscription, new: Subscription) -> None:
        """The subscription state with ``jid`` moved, by a stanza from either side."""

    def on_contact_presence(self, jid: JID, info: PresenceInfo | None) -> None:
        """A contact's resource ``jid`` came online or changed (``info``), or went offline (None)."""

    # -- own presence ----------------------------------------------------

    def set_presence(
        self,
        show: str | None = None,
        status: str | None = None,
        priority: int = 0,
        payload: Iterable[etree._Element] = (),
    ) -> None:
        """Become available (or change availability) and tell every subscribed contact."""
        if show is not None and show not in SHOW_VALUES:
            raise ValueError(f"show must be one of {sorted(SHOW_VALUES)} or None, not {show!r}")
        if not -128 <= priority <= 127:
            raise ValueError(f"priority must be between -128 and 127, not {priority}")
        info = PresenceInfo(show, status, priority, payload)
        self._presence = info
        if not self.component.online:
            return  # announced after the next handshake, not queued stale
        self._then(lambda: self._broadcast(info))

    def go_offline(self, status: str | None = None) -> None:
        """Become unavailable: everyone who was told the entity is available hears it."""
        self._presence = None
        self._then(lambda: self._retract(status=status))

    def send_directed_presence(self, jid: JID) -> None:
        """Send the current availability to ``jid`` outside the roster (RFC 6121 §4.6).

        The component remembers it, so ``jid`` hears of it when the entity goes offline.
        """
        self._then(lambda: self._present_to(jid))

    def _broadcast(self, info: PresenceInfo) -> None:
        if self._presence is not info:
            return  # a later change superseded this one
        for contact in self._roster.subscribers():
            self.component.send_presence(info.element(self.jid, contact))

    def _present_to(self, recipient: JID) -> None:
        if self._presence is None:
            self.component.send_presence(presence(self.jid, recipient, type="unavailable"))
        else:
            self.component.send_presence(self._presence.element(self.jid, recipient))

    def _retract(self, only: JID | None = None, status: str | None = None) -> None:
        """Send ``unavailable`` to those told the entity is available (or to one contact's JIDs)."""
        for jid in self.component.directed.to_retract(self.jid, only):
            self.component.send_presence(presence(self.jid, jid, type="unavailable", status=status))

    # -- subscriptions the entity starts ---------------------------------

    def subscribe(self, jid: JID) -> defer.Deferred[None]:
        """Ask for ``jid``'s presence (RFC 6121 §3.1.2); the request is always routed."""
        change = self._roster.send(self._contact(jid), "subscribe")
        self._then(lambda: self.send(presence(self.jid, change.contact, type="subscribe")))
        return self._settle(change)

    def unsubscribe(self, jid: JID) -> defer.Deferred[None]:
        """Stop receiving ``jid``'s presence, or withdraw a request (§3.3.2)."""
        change = self._roster.send(self._contact(jid), "unsubscribe")
        self._then(lambda: self.send(presence(self.jid, change.contact, type="unsubscribe")))
        if change.old.has_to and not change.new.has_to:
            self._forget_resources(change.contact)
        return self._settle(change)

    def approve(self, jid: JID) -> defer.Deferred[None]:
        """Approve ``jid``'s pending request (§3.1.5): ``subscribed``, then the current presence."""
        change = self._roster.send(self._contact(jid), "subscribed")
        if change.passes:
            self._then(lambda: self._confirm(change.contact))
        return self._settle(change)

    def deny(self, jid: JID) -> defer.Deferred[None]:
        """Refuse ``jid``'s pending request, or cancel its subscription (§3.2.2)."""
        change = self._roster.send(self._contact(jid), "unsubscribed")
        if change.passes:
            if change.old.has_from:
                self._then(lambda: self._retract(only=change.contact))
            self._then(lambda: self.send(presence(self.jid, change.contact, type="unsubscribed")))
        return self._settle(change)

    def remove(self, jid: JID) -> defer.Deferred[None]:
        """Take ``jid`` off the roster, ending subscriptions and requests both ways (§2.5.2)."""
        contact = self._contact(jid)
        old = self._roster.remove(contact)
        if old.has_from:
            self._then(lambda: self._retract(only=contact))
        if old.has_to or old.pending_out:
            self._then(lambda: self.send(presence(self.jid, contact, type="unsubscribe")))
        if old.has_from or old.pending_in:
            self._then(lambda: self.send(presence(self.jid, contact, type="unsubscribed")))
        if old.has_to:
            self._forget_resources(contact)
        if not old.is_none:
            self._hook(self.on_subscription_changed, contact, old, Subscription())
        return self.settled()

    def _contact(self, jid: JID) -> JID:
        contact = jid.bare
        if contact == self.jid:
            raise ValueError("an entity does not subscribe to itself")
        return contact

    def _confirm(self, contact: JID) -> None:
        self.send(presence(self.jid, contact, type="subscribed"))
        if self._presence is not None:
            self.component.send_presence(self._presence.element(self.jid, contact))

    # -- receiving -------------------------------------------------------

    def handle_presence(self, stanza: Stanza) -> None:
        """Dispatch a presence by its type."""
        handler = _PRESENCE_HANDLERS.get(stanza.type)
        if handler is None:
            raise StanzaError("bad-request", text=f"unknown presence type {stanza.type}")
        handler(self, stanza)

    def handle_error(self, stanza: Stanza) -> None:
        """A bounced presence means the sender is not reachable: treat it as offline."""
        if stanza.kind == "presence":
            self._went_offline(stanza.sender)

    def _on_available(self, stanza: Stanza) -> None:
        sender = stanza.sender
        if sender.bare not in self._roster:
            return  # only contacts on the roster are tracked
        info = PresenceInfo.from_element(stanza.element)
        self._online.setdefault(sender.bare, {})[sender.resource or ""] = info
        self._hook(self.on_contact_presence, sender, info)

    def _on_unavailable(self, stanza: Stanza) -> None:
        self._went_offline(stanza.sender)
        if not stanza.sender.is_bare:
            # An offline resource needs no unavailable from us later.
            self.component.directed.forget(self.jid, stanza.sender)

    def _went_offline(self, sender: JID) -> None:
        resources = self._online.get(sender.bare)
        if not resources:
            return
        if sender.is_bare:
            gone = list(resources)
            resources.clear()
        elif sender.resource in resources:
            gone = [sender.resource or ""]
            del resources[sender.resource or ""]
        else:
            gone = []
        if not resources:
            del self._online[sender.bare]
        for resource in gone:
            self._hook(self.on_contact_presence, sender.bare.with_resource(resource or None), None)

    def _forget_resources(self, contact: JID) -> None:
        self._went_offline(contact.bare)

    def _on_probe(self, stanza: Stanza) -> None:
        """Answer a probe (RFC 6121 §4.3.2); it may come from a full JID."""
        sender = stanza.sender
        if self._roster.state(sender).has_from or self.component.directed.told(self.jid, sender):
            self._then(lambda: self._present_to(sender))
        else:
            # Not subscribed: reveal nothing, and let the prober's server fix its roster.
            self._then(lambda: self.send(presence(self.jid, sender.bare, type="unsubscribed")))

    def _on_subscription(self, stanza: Stanza) -> None:
        kind = stanza.type or ""
        contact = stanza.sender.bare
        if contact == self.jid:
            return
        request = ""
        if kind == "subscribe":
            if self._roster.state(contact) == _NONE and self._roster.pending_requests() >= MAX_PENDING_REQUESTS:
                # Strangers' requests wait in memory and storage: bound them.
                raise StanzaError("resource-constraint", text="too many subscription requests are waiting")
            request = etree.tostring(stanza.element, encoding="unicode")
            if len(request) > MAX_REQUEST_CHARS:
                # Keep what matters of an oversized request: who asked.
                request = etree.tostring(presence(contact, self.jid, type="subscribe"), encoding="unicode")
        change = self._roster.receive(contact, kind, request)
        if change.transition.auto_reply == "subscribed":
            # Already subscribed (A.3.1 *): the contact's server lost track; confirm again.
            self._then(lambda: self._confirm(contact))
        if not change.passes:
            return
        if kind == "unsubscribe" and change.old.has_from:
            # §3.3.3: the contact no longer gets the entity's presence; say unavailable once.
            self._then(lambda: self._retract(only=contact))
        elif kind == "unsubscribed" and change.old.has_to:
            # §3.2.3: the entity no longer gets the contact's presence.
            self._forget_resources(contact)
        self._changed(change)
        if kind == "subscribe":
            self._requested(contact)

    def _requested(self, contact: JID) -> None:
        if self.policy == "approve":
            self.approve(contact)
        elif self.policy == "deny":
            self.deny(contact)
        else:
            answer = self._hook(self.on_subscription_request, contact)
            if isinstance(answer, defer.Deferred):
                answer.addCallbacks(
                    lambda result: self._answer(contact, result),
                    lambda failure: self._hook_failed(failure, "on_subscription_request"),
                )
            else:
                self._answer(contact, answer)

    def _answer(self, contact: JID, answer: Any) -> None:
        if answer is True:
            self.approve(contact)
        elif answer is False:
            self.deny(contact)

    def _changed(self, change: Change) -> None:
        if change.changed:
            self._hook(self.on_subscription_changed, change.contact, change.old, change.new)

    def _settle(self, change: Change) -> defer.Deferred[None]:
        """Tell the hook of a change the entity made; fires as :meth:`settled`."""
        self._changed(change)
        return self.settled()

    # -- lifecycle -------------------------------------------------------

    def on_connected(self) -> None:
        """Re-announce presence to subscribers, probe the contacts the entity is subscribed to,
        and repeat the entity's requests still waiting for an answer.

        An answer sent while the link was down (or the process was dying) is
        lost; a contact's server answers a repeated request it already
        approved at once (A.3.1), and drops one still waiting for its user.
        """
        # Whatever was online before the link dropped may be gone; the probes tell.
        self._online.clear()
        info = self._presence
        if info is not None:
            self._then(lambda: self._broadcast(info))
        stanzas = [presence(self.jid, contact, type="probe") for contact in self._roster.subscriptions()]
        stanzas.extend(
            presence(self.jid, contact, type="subscribe")
            for contact in sorted(self._roster, key=str)
            if self._roster.state(contact).pending_out
        )
        if stanzas:
            self._then(lambda: self._send_all(stanzas))
        if not self._offered_requests:
            self._offered_requests = True
            for contact in sorted(self._roster.requests(), key=str):
                self._requested(contact)

    def on_shutdown(self) -> None:
        """Say unavailable to everyone who saw the entity available, once each."""
        self._retract()

    # -- plumbing --------------------------------------------------------

    def _send_all(self, elements: list[etree._Element]) -> None:
        for element in elements:
            self.send(element)

    def _then(self, call: Callable[[], Any]) -> None:
        """Send in order, behind the roster writes that the stanza announces."""
        self._roster.after_writes(call)

    def _hook(self, hook: Callable[..., Any], *args: Any) -> Any:
        try:
            return hook(*args)
        except Exception:
            self._hook_failed(Failure(), hook.__name__)
            return None

    def _hook_failed(self, failure: Failure, name: str) -> None:
        log.failure("{jid}: {hook} raised", failure, jid=str(self.jid), hook=name)


def _subscription(entity: PresenceEntity, stanza: Stanza) -> None:
    entity._on_subscription(stanza)


# By presence type; through the instance, so that subclasses' overrides apply.
_PRESENCE_HANDLERS: dict[str | None, Callable[[PresenceEntity, Stanza], None]] = {
    None: lambda entity, stanza: entity._on_available(stanza),
    "unavailable": lambda entity, stanza: entity._on_unavailable(stanza),
    "subscribe": _subscription,
    "subscribed": _subscription,
    "unsubscribe": _subscription,
    "unsubscribed": _subscription,
    "probe": lambda entity, stanza: entity._on_probe(stanza),
    "error": lambda entity, stanza: entity.handle_error(stanza),
}
