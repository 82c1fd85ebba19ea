"""What a room feature is: the hooks the room core fires, and the values they are handed.

A feature (password, members-only, history, ...) is one module under
:mod:`services.muc.features` holding one :class:`Feature` subclass. It
owns everything of itself: the disco features it announces, its fields in
the configuration form and in ``muc#roominfo``, how a submitted form changes
its settings, the checks a newcomer must pass, what a newcomer is sent
(the history, the subject), what it does when someone joins, speaks or
leaves, the IQ namespaces and message payloads it answers, and the
stanzas to occupants it passes on (private messages, occupant IQs). The room core (:mod:`services.muc.room`) holds the occupants, the
roles and affiliations, the order of stanzas and the timers, and fires the
hooks below in the order of :data:`services.muc.features.FEATURES` (the
service's ``room_features``; a test's service subclass may add a feature).

Every hook gets the room as a :class:`~services.muc.context.RoomContext`,
never as the ``Room`` itself: a feature reads the room's state through it
and changes it only through its methods, so that what a change must also
do (store it first, tell the occupants, keep the directory of public
rooms right) happens in one place.

A hook that refuses raises :class:`~component.errors.StanzaError`; the
core turns it into the error reply. Only the hooks a feature overrides are
called: :class:`Registry` notes them once, when the service starts, so a
hook nobody uses costs nothing per stanza.

Requests reach hooks parsed once into values (:class:`Join`,
:class:`ConfigSubmission`); no hook re-reads the XML for what these carry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence, Set
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import attrs
from lxml import etree

from component.entity import IQResult
from component.errors import StanzaError, whole_number
from component.forms import Field, Form, as_bool, parse_form
from component.jid import JID
from component.stanza import Stanza
from services.muc.config import RoomConfig
from services.muc.protocol import ROOMCONFIG, ROOMINFO
from services.muc.store import AffiliationChange

if TYPE_CHECKING:
    from services.muc.context import RoomContext
    from services.muc.occupants import Occupant

__all__ = [
    "NOT_MINE", "ConfigSubmission", "Feature", "FieldsAt", "GroupchatHandler", "IQHandler", "Join", "MessageHandler",
    "Registry",
]

T = TypeVar("T")

#: Answers an IQ to the room (the payload's (type, tag) it is registered for): a
#: payload element, None for an empty result, a Deferred or a coroutine of either.
IQHandler: TypeAlias = Callable[["RoomContext", Stanza], "IQResult | Awaitable[Any]"]
#: Handles a non-groupchat message to the room carrying the child it is
#: registered for; returns :data:`NOT_MINE` to let the next registered child try.
MessageHandler: TypeAlias = Callable[["RoomContext", Stanza, etree._Element], Any]
#: Handles a groupchat message to the room carrying the child it is registered
#: for, as a write of its own (a coroutine): it checks, stores what the message
#: changes, then has the room reflect it (``RoomContext.reflect_groupchat``).
GroupchatHandler: TypeAlias = Callable[["RoomContext", Stanza, etree._Element], Coroutine[Any, Any, Any]]


class _NotMine:
    """The type of :data:`NOT_MINE`."""

    def __repr__(self) -> str:
        return "NOT_MINE"


#: A message handler's answer for a payload that is not its own after all
#: (a data form of another FORM_TYPE, say): the core tries the next one.
NOT_MINE = _NotMine()


@attrs.frozen
class Join:
    """A presence that would make someone an occupant, or add a client to an occupant (§7.2).

    Parsed once by the core before any check runs.
    """

    #: The presence itself (its ``element`` is the client's).
    stanza: Stanza
    #: The client that sent it (a full JID).
    sender: JID
    #: The nick asked for, as given (the resource of the room JID).
    nick: str
    #: The sender's affiliation with the room (service admins are owners).
    affiliation: str
    #: The ``<x xmlns='…muc'/>`` element, None from a client that does not speak MUC.
    x: etree._Element | None
    #: The password the client gave in ``<x/>``, if any.
    password: str | None
    #: False when the client joins an occupant of the same user (its second client, or one that lost track).
    new_occupant: bool = True
    #: True when this presence creates the room (its sender becomes the owner; no check is asked).
    creates: bool = False


@attrs.frozen
class ConfigSubmission:
    """A submitted ``muc#roomconfig`` form (§10.2), parsed once; its readers raise the XEP's errors.

    A var absent from the form leaves its setting as it was: each reader
    takes the current value as its default.
    """

    values: Mapping[str, list[str]]
    form: Form

    @classmethod
    def parse(cls, x: etree._Element) -> ConfigSubmission | None:
        """Read a submitted form; None for an empty submit, which accepts the settings as they are (an instant room).

        Not a submit, or a FORM_TYPE other than ``muc#roomconfig``: ``bad-request``.
        """
        form = parse_form(x)
        if form.type != "submit":
            raise StanzaError("bad-request", text="not a submitted form")
        if not form.fields and form.form_type is None:
            return None
        if form.form_type not in (None, ROOMCONFIG):
            raise StanzaError("bad-request", text="the form is not a room configuration")
        return cls(form.values(), form)

    def text(self, var: str, default: str) -> str:
        """A text field's value; an empty field is the empty string."""
        found = self.values.get(var)
        if found is None:
            return default
        return found[0] if found else ""

    def flag(self, var: str, default: bool) -> bool:
        """A boolean field's value (``not-acceptable`` when it is no boolean)."""
        return as_bool(self.form.get(var), default)

    def choice(self, var: str, default: str, allowed: tuple[str, ...]) -> str:
        """A list-single field's value, one of ``allowed`` (else ``not-acceptable``)."""
        value = self.text(var, default)
        if value not in allowed:
            raise StanzaError("not-acceptable", text=f"{var} must be one of {', '.join(allowed)}")
        return value

    def number(self, var: str, default: int, none_value: int | None = None) -> int:
        """A whole number, at least 0; with ``none_value``, "none", "" and "0" mean it."""
        text = self.text(var, str(default)).strip()
        if none_value is not None and text in ("none", "", "0"):
            return none_value
        return whole_number(text, var, "not-acceptable")


class FieldsAt:
    """Form fields that features add, each at a position; the form lists them by position.

    Positions are the features' own constants: the configuration form uses
    10, 20, ... in the order XEP-0045 §10.2 lists its fields, roominfo the
    order of §15.5.4 (the core's ``muc#roominfo_occupants`` is at 20). Equal
    positions keep the order the features were registered in.
    """

    def __init__(self) -> None:
        self._scratch = Form()
        self._placed: list[tuple[int, int, Field]] = []

    def add(
        self,
        position: int,
        var: str,
        value: str | bool | int | Iterable[str] | None = None,
        *,
        type: str | None = None,
        label: str | None = None,
        options: Iterable[tuple[str | None, str]] = (),
    ) -> Field:
        """Add a field at ``position``; values as :meth:`component.forms.Form.add` takes them."""
        field = self._scratch.add(var, value, type=type, label=label, options=options)
        self._placed.append((position, len(self._placed), field))
        return field

    def fill(self, form: Form) -> Form:
        """Append the fields to ``form`` in order of position; returns it."""
        form.fields.extend(field for _, _, field in sorted(self._placed, key=lambda placed: placed[:2]))
        return form


class Feature:
    """One feature of every room. Subclass it and override the hooks the feature needs.

    A feature holds no state of its own: one instance serves every room.
    What it must remember per room lives in the room's settings
    (:class:`~services.muc.config.RoomConfig`, stored with the room) or is
    asked of the room through its context.
    """

    #: A short name, for logs and for the registry's checks (unique).
    name: str = ""
    #: Whether the namespaces of :meth:`iq_handlers` go into every room's disco#info; a
    #: feature that answers them in rooms that do not offer it lists them in :meth:`disco_features`.
    announces_iq_namespaces: bool = True
    #: The ``RoomConfig`` fields whose change is privacy-related: announced by this
    #: feature's own status codes (170-173), not by 104 (§10.2.1, Table 6).
    privacy_settings: tuple[str, ...] = ()
    #: Where this feature's :meth:`greeting` goes among the others': §7.2 sends the
    #: discussion history (10) and then the subject (20) to a newcomer.
    greets_at: int = 0
    #: Children that leave a groupchat message with a tag of :meth:`groupchat_handlers`
    #: to the room, reflected as any other (a ``<subject/>`` with a ``<body/>`` is a message, §8.1).
    groupchat_unless: frozenset[str] = frozenset()

    # -- discovery -----------------------------------------------------------------

    def disco_features(self, room: RoomContext) -> Iterable[str]:
        """The disco#info features (``var``) this feature adds to the room's (§6.4), e.g. ``muc_passwordprotected``.

        The namespaces of :meth:`iq_handlers` are announced without being listed here.
        """
        return ()

    def roominfo_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        """Add this feature's ``muc#roominfo`` fields (§15.5.4) to the room's disco#info form."""

    # -- configuration (§10.2) ---------------------------------------------------------

    def config_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        """Add this feature's fields, filled with the current settings, to the configuration form."""

    def configure(self, room: RoomContext, submission: ConfigSubmission, config: RoomConfig) -> Mapping[str, Any]:
        """Read this feature's fields of a submitted form: the settings they change, by ``RoomConfig`` field name.

        ``config`` holds the settings before the submission. Raise
        ``not-acceptable`` for a value the feature cannot take. Nothing is
        applied yet: the core applies every feature's changes together, once
        they are all read, checked and stored.
        """
        return {}

    def configure_affiliations(self, room: RoomContext, submission: ConfigSubmission) -> Sequence[AffiliationChange]:
        """The affiliations this feature's fields of a submitted form change (the lists of admins and owners), as rows.

        Read after every feature's settings; raise as :meth:`configure`
        does. The rows are stored in the transaction of the new settings,
        then :meth:`on_affiliations_configured` applies them.
        """
        return ()

    def on_affiliations_configured(self, room: RoomContext, changes: Sequence[AffiliationChange]) -> None:
        """The rows :meth:`configure_affiliations` gave are stored: apply them and tell the room.

        Called once the new settings are in effect, before
        :meth:`on_config_change` (a room becoming members-only keeps the admins just named).
        """

    def check_config(self, room: RoomContext, config: RoomConfig) -> None:
        """Refuse (raise) new settings that do not go together, before anything of them is stored or applied."""

    def on_config_change(self, room: RoomContext, old: RoomConfig, new: RoomConfig) -> Iterable[int]:
        """The room's settings changed from ``old`` to ``new`` (stored, and now in effect).

        Act on the occupants (those who may no longer stay are removed here)
        and return the status codes the change announces to the room
        (§10.2.1: 170 and 171, 172 and 173). The core adds 104 to a change of
        any setting that is no feature's :attr:`privacy_settings`.
        Called in a form's submission whether or not the settings changed
        (a new room's owner may accept the defaults).
        """
        return ()

    # -- entering (§7.2) -------------------------------------------------------------

    def check_entry(self, room: RoomContext, join: Join) -> None:
        """Refuse (raise) someone who may not be in the room at all (banned, not a member, wrong password).

        Asked of every client that enters an existing room, the creator
        excepted, including another client of a user already in it, before
        the nick is looked at.
        """

    def check_nick(self, room: RoomContext, user: JID, nick: str) -> None:
        """Refuse (raise) ``nick`` for ``user``: asked when a new occupant takes a seat and when an occupant changes nick.

        Asked after the core found no other occupant holding the nick (or
        one that looks like it), before :meth:`check_seat`.
        """

    def check_seat(self, room: RoomContext, join: Join) -> None:
        """Refuse (raise) a new occupant (the room is full, say), after :meth:`check_entry` and :meth:`check_nick` passed.

        Not asked when the client joins an occupant of the same user.
        """

    def entry_codes(self, room: RoomContext, join: Join) -> Iterable[int]:
        """Status codes for the newcomer's own presence (§7.2.2: 100 in a non-anonymous room, 170 when logged)."""
        return ()

    def greeting(self, room: RoomContext, join: Join) -> Callable[[], None] | None:
        """What the newcomer is sent after its own presence (§7.2.15's history, §7.2.16's subject), as a send to call.

        Asked for each client that enters, once every check passed and before
        the occupants' presences go to it, so that a request the feature
        cannot take (a malformed ``<history/>``) refuses the entry (raise)
        before anything is sent. The sends are called after the client's own
        presence, in order of :attr:`greets_at`, before :meth:`on_join`.
        Send to ``join.sender`` alone.
        """
        return None

    def on_join(self, room: RoomContext, occupant: Occupant, join: Join) -> None:
        """A client entered: ``occupant`` holds it, and the client has the occupants' presences and its own.

        Called for each client that enters (``join.sender``), an occupant's
        second client too (``join.new_occupant`` is False), after the
        history and the subject went to it. Send to ``join.sender`` alone.
        """

    def decorate_presence(self, room: RoomContext, occupant: Occupant, presence: etree._Element) -> None:
        """Add children to an occupant's presence as the room sends it (joins, updates, leaving, nick changes).

        ``presence`` is the one copy every recipient's variant is made from,
        before the ``muc#user`` element; what is added goes to everyone (an
        ``occupant-id``, say). The room keeps an occupant's presence
        serialised until it changes, so what is added must depend only on
        the occupant.
        """

    def decorate_message(self, room: RoomContext, occupant: Occupant, message: etree._Element) -> None:
        """Add children to, or refuse (raise), a groupchat message from ``occupant`` before the room reflects it.

        ``message`` is already addressed from the occupant's room JID, with
        the sender's claims removed; the room's ``stanza-id`` is added after
        this hook, and the history keeps the message as decorated. A subject
        change (§8.1) comes here too, after its write.
        """

    def message_children(self, room: RoomContext, occupant: Occupant) -> bytes:
        """Children, serialised, that the room adds to a groupchat message from ``occupant`` (an ``occupant-id``).

        They follow what :meth:`decorate_message` added and come before the
        room's ``stanza-id``; the history keeps them with the message. Added as
        bytes once the message is serialised, which costs a small part of an
        element moved into the message's document; a subject change gets them too.
        """
        return b""

    def decorate_private(self, room: RoomContext, sender: Occupant, message: etree._Element) -> None:
        """Add children to a private message from ``sender`` (§7.5), addressed from its room JID, claims removed."""

    def broadcasts_presence(self, room: RoomContext, role: str) -> bool:
        """Whether the others are sent the presence of an occupant of ``role`` ('none': one leaving).

        Every feature using this hook must agree. An occupant always gets
        its own presence; one the others are not sent is left out of the
        occupant list too (but for the user's own other occupants).
        """
        return True

    def extend_occupant_list(self, room: RoomContext, to: JID, viewer: Occupant | None) -> None:
        """The occupants' presences went to ``to`` (entering, or its view changed): send what else the list holds.

        ``viewer`` is its occupant (not seated yet on entering); sent before
        the client's own presence.
        """

    def on_leave(self, room: RoomContext, occupant: Occupant) -> None:
        """``occupant`` is no longer in the room (its last client left, it was kicked, banned or bounced).

        Its unavailable presence has gone out. Not called when the room
        itself goes (destroyed, or the component shutting down).
        """

    # -- messages ---------------------------------------------------------------------

    def check_subject_change(self, room: RoomContext, occupant: Occupant, subject: str) -> None:
        """Refuse (raise) a subject change (§8.1) by ``occupant``; every feature using this hook must let it pass."""

    def check_private_message(self, room: RoomContext, sender: Occupant, target: Occupant) -> None:
        """Refuse (raise) a private message (§7.5) from ``sender`` to ``target`` (another user's occupant).

        Not asked for a message between two clients of one user.
        """

    # -- what the feature answers -----------------------------------------------------------

    def iq_handlers(self) -> Mapping[tuple[str, str], IQHandler]:
        """The IQs to the room this feature answers, by (``get`` or ``set``, payload tag in Clark notation).

        Asked once, when the registry is built. The room checks that it
        exists first (else ``item-not-found``); IQs to an occupant never come here.
        """
        return {}

    def info_nodes(self) -> Mapping[str, IQHandler]:
        """The disco#info nodes of the room this feature answers (§7.12's ``x-roomuser-item``), by node."""
        return {}

    def groupchat_handlers(self) -> Mapping[str, GroupchatHandler]:
        """The groupchat messages this feature handles, by child tag (a retraction, say), before the room reflects them.

        Such a message is not reflected in line with the others: it waits,
        like a subject change, for the writes before it, and the handler's
        writes are done before anyone hears of it. Two features may not
        claim one tag.
        """
        return {}

    def message_to_occupant(self, room: RoomContext, stanza: Stanza) -> Any:
        """Handle a message to an occupant's room JID (§7.5); one feature at most has this hook.

        Without one, such a message is answered ``service-unavailable``.
        """
        raise StanzaError("service-unavailable", text="the room does not pass messages to occupants")

    def iq_to_occupant(self, room: RoomContext, stanza: Stanza) -> IQResult | Awaitable[Any]:
        """Answer an IQ to an occupant's room JID, as a relay to the occupant's client; one feature at most has this hook.

        Outside the room's order of stanzas: the answer comes from another
        client, and the room must not wait for it. The room checks that it
        exists first (else ``item-not-found``).
        """
        raise StanzaError("service-unavailable", text="the room does not pass IQs to occupants")

    def message_handlers(self) -> Mapping[str, MessageHandler]:
        """The messages to the room (not groupchat, not to an occupant) this feature handles, by child tag.

        For each registered tag, in the order of the features, the core
        looks for the child in the message and calls its handler, until one
        does not answer :data:`NOT_MINE`; no handler: ``bad-request``.
        """
        return {}


class Registry:
    """The features of every room, and for each hook the features that use it, found once.

    The order of ``features`` is the order the hooks fire in.
    """

    def __init__(self, features: Iterable[Feature]) -> None:
        self.features: tuple[Feature, ...] = tuple(features)
        names = [feature.name for feature in self.features]
        if len(set(names)) != len(names) or not all(names):
            raise ValueError(f"room features need distinct names: {names}")
        used = self._using
        self.disco = used("disco_features")
        self.roominfo_features = used("roominfo_fields")
        self.config_fields = used("config_fields")
        self.configure = used("configure")
        self.check_config = used("check_config")
        self.affiliation_fields = used("configure_affiliations")
        self.config_changes = used("on_config_change")
        self.privacy_settings = frozenset(name for feature in self.features for name in feature.privacy_settings)
        self.entry_checks = used("check_entry")
        self.nick_checks = used("check_nick")
        self.seat_checks = used("check_seat")
        self.entry_codes = used("entry_codes")
        self.joined = used("on_join")
        self.left = used("on_leave")
        self.subject_checks = used("check_subject_change")
        self.private_checks = used("check_private_message")
        self.presence_decorators = used("decorate_presence")
        self.presence_filters = used("broadcasts_presence")
        self.occupant_list_extras = used("extend_occupant_list")
        self.message_decorators = used("decorate_message")
        self.message_children = used("message_children")
        self.private_decorators = used("decorate_private")
        self.greeters = tuple(sorted(used("greeting"), key=lambda feature: feature.greets_at))
        #: What handles messages and IQs to an occupant's room JID (a plain Feature refuses them).
        self.message_to_occupant = self._one("message_to_occupant").message_to_occupant
        self.iq_to_occupant = self._one("iq_to_occupant").iq_to_occupant
        #: (type, payload tag) → its handler.
        self.iq: dict[tuple[str, str], IQHandler] = {}
        #: disco#info node → its handler.
        self.info_nodes: dict[str, IQHandler] = {}
        #: Child tag → its handlers, in the order of the features.
        self.messages: dict[str, list[MessageHandler]] = {}
        #: Child tag → the handler of groupchat messages carrying it, in the order of the features.
        self.groupchat: dict[str, GroupchatHandler] = {}
        #: Child tag of :attr:`groupchat` → the children that leave such a message to the room.
        self._groupchat_unless: dict[str, frozenset[str]] = {}
        for feature in self.features:
            _register(self.iq, feature.iq_handlers(), "answer")
            _register(self.info_nodes, feature.info_nodes(), "answer disco#info node")
            for tag, on_message in feature.message_handlers().items():
                self.messages.setdefault(tag, []).append(on_message)
            claimed = feature.groupchat_handlers()
            _register(self.groupchat, claimed, "handle groupchat messages with")
            self._groupchat_unless.update(dict.fromkeys(claimed, feature.groupchat_unless))
        #: The namespaces of the IQs the features answer, for disco#info (unless a feature says itself).
        self.namespaces = frozenset(
            etree.QName(tag).namespace or ""
            for feature in self.features if feature.announces_iq_namespaces
            for _, tag in feature.iq_handlers()
        )

    # -- what the hooks make together ------------------------------------------------------

    def config_form(self, room: RoomContext) -> Form:
        """The configuration form of a room, filled with its current settings."""
        fields = FieldsAt()
        for feature in self.config_fields:
            feature.config_fields(room, fields)
        form = Form(
            "form", ROOMCONFIG, title=f"Configuration for {room.jid}",
            instructions="Complete and submit this form to configure the room.",
        )
        return fields.fill(form)

    def read_config(self, room: RoomContext, submission: ConfigSubmission) -> RoomConfig:
        """The settings after a submission: every feature's fields read (in order), then checked together."""
        old = room.config
        changes: dict[str, Any] = {}
        for feature in self.configure:
            changes.update(feature.configure(room, submission, old))
        new = attrs.evolve(old, **changes)
        for feature in self.check_config:
            feature.check_config(room, new)
        return new

    def read_affiliations(
        self, room: RoomContext, submission: ConfigSubmission
    ) -> list[tuple[Feature, Sequence[AffiliationChange]]]:
        """The affiliation rows a submission changes, by the feature that applies them once stored."""
        found = []
        for feature in self.affiliation_fields:
            rows = feature.configure_affiliations(room, submission)
            if rows:
                found.append((feature, rows))
        return found

    def config_changed(self, room: RoomContext, old: RoomConfig, new: RoomConfig) -> set[int]:
        """Fire :meth:`Feature.on_config_change`; the status codes to announce.

        104 says a non-privacy-related setting changed (§10.2.1): a change of
        who sees real JIDs or of logging alone has only its own code, as in
        Prosody.
        """
        others = (field.name for field in attrs.fields(RoomConfig) if field.name not in self.privacy_settings)
        codes = {104} if any(getattr(old, name) != getattr(new, name) for name in others) else set()
        for feature in self.config_changes:
            codes.update(feature.on_config_change(room, old, new))
        return codes

    def roominfo(self, room: RoomContext, occupants: int) -> etree._Element:
        """The ``muc#roominfo`` form (XEP-0128) of a room's disco#info."""
        fields = FieldsAt()
        fields.add(20, "muc#roominfo_occupants", occupants, label="Number of occupants")
        for feature in self.roominfo_features:
            feature.roominfo_fields(room, fields)
        return fields.fill(Form("result", ROOMINFO)).to_element()

    def disco_features(self, room: RoomContext) -> set[str]:
        """Every feature's disco#info features, and the namespaces they answer."""
        found = set(self.namespaces)
        for feature in self.disco:
            found.update(feature.disco_features(room))
        return found

    def claim(self, tags: Set[Any]) -> str | None:
        """The child tag of a groupchat message, with children of ``tags``, that a feature handles as a write of its own."""
        if not self.groupchat:
            return None
        unless = self._groupchat_unless
        return next((tag for tag in self.groupchat if tag in tags and tags.isdisjoint(unless[tag])), None)

    def _one(self, hook: str) -> Feature:
        """The one feature with ``hook``; a plain :class:`Feature` when none has it."""
        found = self._using(hook)
        if len(found) > 1:
            raise ValueError(f"two room features have {hook}: {[feature.name for feature in found]}")
        return found[0] if found else Feature()

    def _using(self, hook: str) -> tuple[Feature, ...]:
        default = getattr(Feature, hook)
        return tuple(feature for feature in self.features if getattr(type(feature), hook) is not default)


def _register(handlers: dict[Any, T], more: Mapping[Any, T], what: str) -> None:
    """Add a feature's handlers, each key at most once over every feature."""
    for key, handler in more.items():
        if key in handlers:
            raise ValueError(f"two room features {what} {key!r}")
        handlers[key] = handler
