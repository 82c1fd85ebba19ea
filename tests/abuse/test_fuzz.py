"""A seeded fuzz of the MUC: well-formed stanzas of every kind, in sequences, through the wire.

Each example sets up two or three rooms (created and configured by their
owners with drawn settings, some users already in them), then feeds a drawn
sequence of stanzas through :class:`ServerWire` into the MUC on immediate
SQLite storage: presence, message and IQ of every type (and invalid ones),
to the service, to rooms, to occupants with existing and unknown nicks and
to odd but valid addresses, from a few real users with several resources,
carrying MUC payloads (joins with passwords and history requests,
invitations and declines, admin and owner queries, registration, disco,
voice requests, subjects, injected stanza-ids, delays and unknown
elements). Between stanzas the clock moves, and clients answer or bounce
what the component sent them.

After every step these hold:

- nothing escapes ``dataReceived``, the stream stays up, nothing is logged
  as a failure and no ``internal-server-error`` goes out (but the one an
  occupant's client answers a query with, which the room passes on);
- **isolation**: a stanza from ``room@`` or ``room@/nick`` goes only to a user
  (bare JID) who has sent that room something, or whom an occupant of that
  room named as the addressee of an invitation or a decline; a groupchat
  message or a presence from a room goes only to a client (full JID) that
  sent that room a presence;
- **semi-anonymity**: in a room where only moderators see real JIDs, what
  the room itself says to someone who is no moderator (its presences, and
  its messages from the room's own address) carries no real JID but the
  recipient's own in a muc#user ``<item jid=…/>`` or a voice request's
  ``muc#jid`` (the room must be semi-anonymous and the recipient a
  non-moderator both before and after the step for this to count).

CI runs a fixed number of derandomised examples; ``python -m bench.fuzz
--minutes N`` runs random ones for longer (``NETHERFIELD_FUZZ_EXAMPLES``
sets how many this test runs).
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from twisted.logger import globalLogPublisher

from component import namespaces as ns
from component.jid import JID, InvalidJID, parse_jid
from services.muc.features.moderated import REQUEST
from services.muc.protocol import MUC, MUC_ADMIN, MUC_OWNER, MUC_USER, ROOMCONFIG
from services.muc.room import Room
from services.muc.service import MucService
from services.muc.testing import immediate_storage
from tests.abuse.wire import ServerWire

__all__ = ["Scenario", "run_scenario", "scenarios"]

DOMAIN = "chat.shakespeare.lit"
ROOMS = ("coven", "heath", "castle")
USERS = ("crone1@shakespeare.lit", "wiccarocks@shakespeare.lit", "hag66@shakespeare.lit", "hecate@underworld.lit")
RESOURCES = ("desktop", "laptop", "pda")
NICKS = ("owner", "firstwitch", "secondwitch", "thirdwitch", "FirstWitch", "ﬁrstwitch", "hecate", "w" * 64)
ERR = "urn:ietf:params:xml:ns:xmpp-stanzas"
CONDITIONS = (
    "bad-request", "conflict", "feature-not-implemented", "forbidden", "gone", "internal-server-error",
    "item-not-found", "jid-malformed", "not-acceptable", "not-allowed", "not-authorized", "policy-violation",
    "recipient-unavailable", "redirect", "remote-server-not-found", "remote-server-timeout", "resource-constraint",
    "service-unavailable", "subscription-required", "undefined-condition", "unexpected-request",
)
TYPES = {
    "message": (None, "normal", "chat", "groupchat", "headline", "error", "bogus"),
    "presence": (None, "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error", "bogus"),
    "iq": ("get", "set", "result", "error", None, "bogus"),
}
#: The types that do something, drawn more often than the rest.
USUAL_TYPES = {"message": (None, "chat", "groupchat"), "presence": (None, "unavailable"), "iq": ("get", "set")}
CONFIG_VALUES = {
    "muc#roomconfig_roomname": ("", "The Coven", "n" * 300),
    "muc#roomconfig_roomdesc": ("", "where witches meet"),
    "muc#roomconfig_persistentroom": ("1", "0", "true", "yes"),
    "muc#roomconfig_publicroom": ("1", "0"),
    "muc#roomconfig_membersonly": ("1", "0"),
    "muc#roomconfig_moderatedroom": ("1", "0"),
    "muc#roomconfig_passwordprotectedroom": ("1", "0"),
    "muc#roomconfig_roomsecret": ("", "cauldronburn"),
    "muc#roomconfig_whois": ("moderators", "anyone", "nobody"),
    "muc#roomconfig_changesubject": ("1", "0"),
    "muc#roomconfig_allowpm": ("anyone", "participants", "moderators", "none", "everyone"),
    "muc#roomconfig_allowinvites": ("1", "0"),
    "muc#roomconfig_maxusers": ("none", "1", "2", "10", "-1", "many"),
    "muc#roomconfig_historylength": ("0", "1", "5", "20", "99999", "-3", "x"),
    "muc#roomconfig_enablelogging": ("1", "0"),
}
#: Values a configuration form may not carry: a room set up with them would stay locked.
INVALID_VALUES = frozenset({"nobody", "everyone", "-1", "many", "-3", "x"})
_ITEM_JID = f"{{{MUC_USER}}}item"
_FIELD = f"{{{ns.DATA_FORMS}}}field"


def attr(name: str, value: str | None) -> str:
    return "" if value is None else f" {name}={quoteattr(value)}"


def element(tag: str, namespace: str | None = None, attrs_: str = "", children: str = "") -> str:
    xmlns = "" if namespace is None else f" xmlns={quoteattr(namespace)}"
    return f"<{tag}{xmlns}{attrs_}>{children}</{tag}>" if children else f"<{tag}{xmlns}{attrs_}/>"


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each drawn in proportion to its weight (``one_of`` merges repeated ones)."""
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(pool) - 1).flatmap(lambda index: pool[index])


# -- addresses ------------------------------------------------------------------

#: The users who do most of the talking: XEP-0045's cast, each from its usual client.
CAST = ("crone1@shakespeare.lit/desktop", "wiccarocks@shakespeare.lit/laptop", "hag66@shakespeare.lit/pda")

real_users = st.sampled_from(USERS)
cast = st.sampled_from(CAST)
senders = weighted(
    (3, cast),
    (1, st.tuples(real_users, st.sampled_from(RESOURCES)).map(lambda pair: f"{pair[0]}/{pair[1]}")),
    (1, real_users),  # a bare sender, as a server may send
)
rooms = st.sampled_from(ROOMS)
nicks = st.one_of(
    st.sampled_from(NICKS[:4]), st.sampled_from(NICKS),
    st.sampled_from(("Hecate ", "a/b", "ünïcødé", "x" * 1023, "0")),
)
room_addresses = weighted(
    (3, st.sampled_from(ROOMS[:2]).map(lambda room: f"{room}@{DOMAIN}")),
    (1, rooms.map(lambda room: f"{room}@{DOMAIN}")),
    (1, rooms.map(lambda room: f"{room.upper()}@{DOMAIN.upper()}")),
)
occupant_addresses = st.tuples(room_addresses, nicks).map(lambda pair: f"{pair[0]}/{pair[1]}")
odd_addresses = st.sampled_from((
    f"nowhere@{DOMAIN}", f"{DOMAIN}/resource", f"ĉambro@{DOMAIN}", "shakespeare.lit",
    f"{'n' * 1023}@{DOMAIN}", "crone1@shakespeare.lit/desktop", f"coven@{DOMAIN}.",
))
recipients = weighted((6, room_addresses), (4, occupant_addresses), (1, st.just(DOMAIN)), (1, odd_addresses))
named_jids = st.one_of(  # whom an invitation, a decline, an item or a destroy names
    senders, real_users, st.sampled_from(("stranger@elsewhere.lit", "stranger@elsewhere.lit/x", "not a@@jid", "")),
    room_addresses, occupant_addresses,
)

# -- text ---------------------------------------------------------------------

_characters = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn"))
texts = st.one_of(
    st.sampled_from(("", "hello", " ", "ünïcødé ✓", "<&>'\"", "a" * 2000, "1")),
    st.text(_characters, max_size=12),
)
ids = st.one_of(st.none(), st.sampled_from(("", "id1", "id2", "x" * 3000, "ü&'\"")))


def text_element(tag: str, namespace: str | None = None) -> st.SearchStrategy[str]:
    return texts.map(lambda text: f"<{tag}{attr('xmlns', namespace)}>{escape(text)}</{tag}>")


# -- payloads -----------------------------------------------------------------

history_requests = st.builds(
    lambda name, value: element("history", None, attr(name, value)),
    st.sampled_from(("maxchars", "maxstanzas", "seconds", "since")),
    st.sampled_from(("0", "1", "10", "-1", "x", "99999999999999999999", "2002-10-13T23:58:37Z", "1970-01-01T00:00:00Z")),
)
muc_x = st.lists(st.one_of(history_requests, text_element("password")), max_size=2).map(
    lambda children: element("x", MUC, "", "".join(children))
)
invites = st.builds(
    lambda to, reason: element("invite", None, attr("to", to), reason), named_jids, st.one_of(st.just(""), text_element("reason"))
)
declines = st.builds(
    lambda to, reason: element("decline", None, attr("to", to), reason), named_jids, st.one_of(st.just(""), text_element("reason"))
)
user_items = st.builds(
    lambda affiliation, role, jid, nick: element(
        "item", None, attr("affiliation", affiliation) + attr("role", role) + attr("jid", jid) + attr("nick", nick)
    ),
    st.sampled_from((None, "owner", "admin", "member", "none", "outcast", "bogus")),
    st.sampled_from((None, "moderator", "participant", "visitor", "none", "bogus")),
    st.one_of(st.none(), named_jids),
    st.one_of(st.none(), nicks),
)
user_x = st.lists(
    weighted((3, invites), (2, declines), (1, text_element("password")), (1, user_items),
             (1, st.sampled_from(("<status code='110'/>", "<status code='201'/>", "<destroy/>")))),
    max_size=3,
).map(lambda children: element("x", MUC_USER, "", "".join(children)))
affiliations = st.sampled_from(("owner", "admin", "member", "none", "outcast"))
roles = st.sampled_from(("moderator", "participant", "visitor", "none"))
reasons = st.one_of(st.just(""), text_element("reason"))
admin_items = st.one_of(
    st.builds(  # an affiliation change, or a list asked for
        lambda affiliation, jid, reason: element("item", None, attr("affiliation", affiliation) + attr("jid", jid), reason),
        affiliations, st.one_of(st.none(), real_users, named_jids), reasons,
    ),
    st.builds(  # a role change by nick, or a list asked for
        lambda role, nick, reason: element("item", None, attr("role", role) + attr("nick", nick), reason),
        roles, st.one_of(st.none(), nicks), reasons,
    ),
    st.builds(  # anything
        lambda affiliation, role, jid, nick, reason: element(
            "item", None, attr("affiliation", affiliation) + attr("role", role) + attr("jid", jid) + attr("nick", nick),
            reason,
        ),
        st.one_of(st.none(), affiliations, st.just("bogus")),
        st.one_of(st.none(), roles, st.just("bogus")),
        st.one_of(st.none(), named_jids),
        st.one_of(st.none(), nicks),
        reasons,
    ),
)
admin_query = weighted((3, st.lists(admin_items, min_size=1, max_size=2)), (1, st.lists(admin_items, max_size=3))).map(lambda items: element("query", MUC_ADMIN, "", "".join(items)))


def field(var: str, values: list[str], type_: str | None = None) -> str:
    return element("field", None, attr("var", var) + attr("type", type_), "".join(f"<value>{escape(v)}</value>" for v in values))


config_fields = st.sampled_from(sorted(CONFIG_VALUES)).flatmap(
    lambda var: st.sampled_from(CONFIG_VALUES[var]).map(lambda value: field(var, [value]))
)
valid_config_fields = st.sampled_from(sorted(set(CONFIG_VALUES) - {"muc#roomconfig_roomsecret"})).flatmap(
    lambda var: st.sampled_from([v for v in CONFIG_VALUES[var] if v not in INVALID_VALUES])
    .map(lambda value: field(var, [value]))
)
form_types = st.sampled_from((None, ROOMCONFIG, "urn:other:form", REQUEST))
data_forms = st.builds(
    lambda type_, form_type, fields: element(
        "x", ns.DATA_FORMS, attr("type", type_),
        (field("FORM_TYPE", [form_type], "hidden") if form_type else "") + "".join(fields),
    ),
    st.sampled_from(("submit", "submit", "cancel", "form", None)),
    form_types,
    st.lists(weighted((3, config_fields), (1, st.builds(field, texts, st.lists(texts, max_size=2)))), max_size=5),
)
destroys = st.builds(
    lambda jid, reason, password: element("destroy", None, attr("jid", jid), reason + password),
    st.one_of(st.none(), named_jids),
    st.one_of(st.just(""), text_element("reason")),
    st.one_of(st.just(""), text_element("password")),
)
owner_query = st.one_of(st.just(""), data_forms, destroys, st.just("<x xmlns='jabber:x:data' type='submit'/>")).map(
    lambda child: element("query", MUC_OWNER, "", child)
)
register_query = st.one_of(
    st.just(""), st.just("<remove/>"),
    st.builds(
        lambda type_, form_type, nick: element(
            "x", ns.DATA_FORMS, attr("type", type_),
            (field("FORM_TYPE", [form_type], "hidden") if form_type else "") + field("muc#register_roomnick", [nick]),
        ),
        st.sampled_from(("submit", "submit", "cancel", "form")),
        st.sampled_from((None, "http://jabber.org/protocol/muc#register", "urn:other:form")),
        nicks,
    ),
).map(lambda child: element("query", "jabber:iq:register", "", child))
rsm = st.builds(
    lambda max_, after: element("set", "http://jabber.org/protocol/rsm", "", max_ + after),
    st.sampled_from(("", "<max>0</max>", "<max>1</max>", "<max>-1</max>", "<max>x</max>")),
    st.one_of(st.just(""), st.just("<before/>"), room_addresses.map(lambda a: f"<after>{a}</after>")),
)
disco_queries = st.one_of(
    st.builds(lambda node: element("query", ns.DISCO_INFO, attr("node", node)),
              st.sampled_from((None, "x-roomuser-item", "http://jabber.org/protocol/muc#traffic", ""))),
    st.builds(lambda node, page: element("query", ns.DISCO_ITEMS, attr("node", node), page),
              st.sampled_from((None, "x-roomuser-item")), st.one_of(st.just(""), rsm)),
)
voice_forms = st.builds(
    lambda role, jid, nick, allow: element(
        "x", ns.DATA_FORMS, " type='submit'",
        field("FORM_TYPE", [REQUEST], "hidden") + role + jid + nick + allow,
    ),
    st.sampled_from(("", field("muc#role", ["participant"]), field("muc#role", ["moderator"]))),
    st.one_of(st.just(""), named_jids.map(lambda j: field("muc#jid", [j]))),
    st.one_of(st.just(""), nicks.map(lambda n: field("muc#roomnick", [n]))),
    st.sampled_from(("", field("muc#request_allow", ["true"]), field("muc#request_allow", ["0"]),
                     field("muc#request_allow", ["maybe"]))),
)
injections = st.one_of(
    st.builds(lambda by, id_: element("stanza-id", ns.STANZA_ID, attr("by", by) + attr("id", id_)),
              st.one_of(room_addresses, st.just("elsewhere.lit")), st.sampled_from(("forged", ""))),
    st.just("<occupant-id xmlns='urn:xmpp:occupant-id:0' id='forged'/>"),
    st.builds(lambda from_: element("delay", ns.DELAY, attr("from", from_) + " stamp='2002-09-10T23:08:25Z'"),
              st.one_of(room_addresses, senders)),
    st.sampled_from(tuple(
        f"<{state} xmlns='http://jabber.org/protocol/chatstates'/>"
        for state in ("active", "composing", "paused", "inactive", "gone")
    )),
    st.just("<unknown xmlns='urn:example:unknown'><deep><deeper a='1'/></deep></unknown>"),
    st.just("<x xmlns='jabber:x:conference' jid='coven@chat.shakespeare.lit'/>"),
)
error_elements = st.builds(
    lambda type_, condition: element("error", None, attr("type", type_), element(condition, ERR)),
    st.sampled_from(("cancel", "wait", "modify", "auth", "bogus")),
    st.sampled_from(CONDITIONS),
)
message_children = weighted(
    (4, text_element("body")), (1, text_element("subject")), (1, text_element("thread")), (3, user_x),
    (1, data_forms), (2, voice_forms), (2, injections), (1, muc_x), (1, error_elements),
)
presence_children = weighted(
    (6, muc_x), (1, user_x),
    (2, st.sampled_from(("<show>away</show>", "<show>dnd</show>", "<show>bogus</show>", "<priority>5</priority>",
                         "<priority>-200</priority>", "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/>"))),
    (1, text_element("status")), (1, injections), (1, error_elements),
    (1, st.just(f"<x xmlns='vcard-temp:x:update'><photo>{'0' * 40}</photo></x>")),
)
iq_children = weighted(
    (4, admin_query), (3, owner_query), (1, register_query), (2, disco_queries),
    (3, st.sampled_from((
        "<ping xmlns='urn:xmpp:ping'/>", "<vCard xmlns='vcard-temp'/>", "<query xmlns='jabber:iq:version'/>",
        "<time xmlns='urn:xmpp:time'/>", "<unknown xmlns='urn:example:unknown'/>",
        "<query xmlns='http://jabber.org/protocol/muc#user'/>",
    ))),
    (1, error_elements),
)


# -- steps -------------------------------------------------------------------


@attrs.frozen
class Send:
    """One stanza from a client."""

    kind: str
    sender: str
    to: str
    type: str | None
    id: str | None
    children: tuple[str, ...]

    def xml(self) -> str:
        inner = "".join(self.children)
        head = attr("from", self.sender) + attr("to", self.to) + attr("type", self.type) + attr("id", self.id)
        return f"<{self.kind}{head}>{inner}</{self.kind}>" if inner else f"<{self.kind}{head}/>"


@attrs.frozen
class Answer:
    """A client answers (or, from another address, pretends to answer) an IQ the component sent."""

    back: int
    error: str | None
    spoofed: bool


@attrs.frozen
class Bounce:
    """A message or presence the component sent comes back as an error (a gone client)."""

    back: int
    condition: str


@attrs.frozen
class Tick:
    """Time passes: rate limits refill, requests time out, locked rooms expire, idle rooms unload."""

    seconds: float


def types(kind: str) -> st.SearchStrategy[str | None]:
    usual = st.sampled_from(USUAL_TYPES[kind])
    return weighted((3, usual), (1, st.sampled_from(TYPES[kind])))


def _send(kind: str, children: st.SearchStrategy[str], size: int) -> st.SearchStrategy[Send]:
    return st.builds(
        lambda sender, to, type_, id_, kids: Send(kind, sender, to, type_, id_, tuple(kids)),
        senders, recipients, types(kind), ids, st.lists(children, max_size=size),
    )


def _iq(sender: str, to: str, type_: str | None, id_: str | None, kids: list[str]) -> Send:
    return Send("iq", sender, to, type_, id_, tuple(kids))


iq_sends = st.builds(
    _iq, weighted((2, st.just(CAST[0])), (3, senders)), recipients, types("iq"),
    weighted((3, st.sampled_from(("q1", "q2", "q3"))), (1, ids)),
    weighted((4, st.lists(iq_children, min_size=1, max_size=1)), (1, st.lists(iq_children, max_size=2))),
)
bare_rooms = st.sampled_from(ROOMS).map(lambda room: f"{room}@{DOMAIN}")
cast_nicks = st.sampled_from(("owner", *NICKS[1:4]))


def _legit(kind: str, type_: str | None, to: st.SearchStrategy[str], child: st.SearchStrategy[str]) -> st.SearchStrategy[Send]:
    return st.builds(lambda sender, address, id_, kid: Send(kind, sender, address, type_, id_, (kid,)),
                     cast, to, st.sampled_from(("m1", "m2")), child)


#: What a well-behaved client of the cast does: the fuzz needs them to reach deep states.
legit_steps = weighted(
    (3, _legit("presence", None, st.tuples(bare_rooms, cast_nicks).map("/".join),
               st.just(f"<x xmlns='{MUC}'><password>cauldronburn</password></x>"))),
    (1, _legit("presence", "unavailable", st.tuples(bare_rooms, cast_nicks).map("/".join), st.just(""))),
    (3, _legit("message", "groupchat", bare_rooms, text_element("body"))),
    (1, _legit("message", "chat", st.tuples(bare_rooms, cast_nicks).map("/".join), text_element("body"))),
    (2, _legit("iq", "set", bare_rooms, st.builds(
        lambda affiliation, user: element("query", MUC_ADMIN, "", element("item", None, attr("affiliation", affiliation) + attr("jid", user))),
        affiliations, real_users))),
    (2, _legit("iq", "set", bare_rooms, st.builds(
        lambda role, nick: element("query", MUC_ADMIN, "", element("item", None, attr("role", role) + attr("nick", nick))),
        roles, cast_nicks))),
    (1, _legit("iq", "set", bare_rooms, st.lists(config_fields, min_size=1, max_size=4).map(
        lambda fields: element("query", MUC_OWNER, "", element(
            "x", ns.DATA_FORMS, " type='submit'", field("FORM_TYPE", [ROOMCONFIG], "hidden") + "".join(fields)))))),
    (1, _legit("message", None, bare_rooms, st.builds(
        lambda to: element("x", MUC_USER, "", element("invite", None, attr("to", to))), named_jids))),
    (1, _legit("message", None, bare_rooms, voice_forms)),
    (1, _legit("iq", "get", st.tuples(bare_rooms, cast_nicks).map("/".join), st.sampled_from((
        "<ping xmlns='urn:xmpp:ping'/>", "<vCard xmlns='vcard-temp'/>", "<query xmlns='jabber:iq:version'/>"))),
    ),
)
steps = weighted(
    (6, legit_steps),
    (3, _send("presence", presence_children, 3)),
    (4, _send("message", message_children, 4)),
    (4, iq_sends),
    (1, st.builds(Answer, st.integers(0, 3), st.one_of(st.none(), st.sampled_from(CONDITIONS)), st.booleans())),
    (1, st.builds(Bounce, st.integers(0, 5), st.sampled_from(CONDITIONS))),
    (1, st.builds(Tick, st.sampled_from((0.5, 2.0, 61.0, 301.0, 90_000.0)))),
)


@attrs.frozen
class Setup:
    """A room made before the steps: its owner, its settings and who is already in it."""

    room: str
    owner: str
    fields: tuple[str, ...]
    guests: tuple[tuple[str, str], ...]


setups = st.builds(
    lambda owner, fields, guests: Setup("", owner, tuple(fields), tuple(guests)),
    weighted((3, cast), (1, senders)),
    st.lists(valid_config_fields, max_size=6),
    st.lists(st.tuples(senders, st.sampled_from(NICKS[1:4]) | st.sampled_from(NICKS)), max_size=4),
)


@attrs.frozen
class Scenario:
    """Rooms set up, then the steps."""

    setups: tuple[Setup, ...]
    steps: tuple[Any, ...]


def scenarios(max_steps: int = 40) -> st.SearchStrategy[Scenario]:
    """Two or three rooms set up, then up to ``max_steps`` steps."""
    return st.builds(
        lambda made, taken: Scenario(tuple(made), tuple(taken)),
        st.lists(setups, min_size=2, max_size=3).map(
            # The first room is the coven of XEP-0045's examples, the crone's.
            lambda made: [
                attrs.evolve(setup, room=room, owner=CAST[0] if index == 0 else setup.owner)
                for index, (setup, room) in enumerate(zip(made, ROOMS, strict=False))
            ]
        ),
        # Hypothesis favours short lists: the fuzz is in the long ones.
        st.lists(steps, min_size=max_steps // 4, max_size=max_steps),
    )


# -- the checker ---------------------------------------------------------------


def _jid(text: str | None) -> JID | None:
    try:
        return parse_jid(text or "")
    except InvalidJID:
        return None


@attrs.frozen
class RoomView:
    """What the checker needs of one room's state at one moment."""

    anonymous: bool
    moderators: frozenset[JID]
    occupants: frozenset[JID]


class Checker:
    """Feeds stanzas and checks every property on what comes out."""

    def __init__(self, wire: ServerWire) -> None:
        self.wire = wire
        self.domain = JID(None, DOMAIN)
        #: Room (bare JID) → the room object last found in memory there.
        self.last_seen: dict[JID, Room] = {}
        #: Room (bare JID) → users (bare JIDs) that sent it something.
        self.users: defaultdict[JID, set[JID]] = defaultdict(set)
        #: Room → clients (as given) that sent it a presence.
        self.present: defaultdict[JID, set[JID]] = defaultdict(set)
        #: Room → addressees of invitations and declines an occupant sent.
        self.named: defaultdict[JID, set[JID]] = defaultdict(set)
        #: What the component sent, newest last: IQ requests to answer, messages and presences to bounce.
        self.requests: list[etree._Element] = []
        self.bounceable: list[etree._Element] = []
        self.failures: list[str] = []
        self.log: list[str] = []

    def observe(self, event: dict[str, Any]) -> None:
        if event.get("log_failure") is not None:
            self.failures.append(f"{event.get('log_format')}: {event['log_failure'].getTraceback()}")

    def view(self, room: JID) -> RoomView | None:
        entity = self.wire.component.router.loaded(room.node or "")
        if not isinstance(entity, Room):
            return None
        self.last_seen[room] = entity
        return self._view_of(entity)

    def _view_after(self, room: JID, before: RoomView | None) -> RoomView | None:
        """The room as the step left it; one that went during the step (its last occupant left, or was
        removed by a members-only change), as it was when it went: its configuration then is what the
        stanzas it sent on the way out were sent under."""
        view = self.view(room)
        if view is None and before is not None:
            return self._view_of(self.last_seen[room])
        return view

    @staticmethod
    def _view_of(entity: Room) -> RoomView:
        occupants = list(entity.occupants)
        sessions = frozenset(jid for occupant in occupants for jid in occupant.sessions)
        moderators = frozenset(jid for o in occupants if o.role == "moderator" for jid in o.sessions)
        return RoomView(entity.config.anonymous, moderators, sessions)

    def feed(self, data: str) -> list[etree._Element]:
        self.log.append(data)
        try:
            sent = etree.fromstring(data.encode())
        except etree.XMLSyntaxError:
            raise AssertionError(f"the fuzz made XML that is not well-formed: {data[:300]}") from None
        sender, to = _jid(sent.get("from")), _jid(sent.get("to"))
        room = to.bare if to is not None and to.node is not None and to.domain == DOMAIN else None
        before = {jid: self.view(jid) for jid in self._rooms()}
        if room is not None and sender is not None:
            self.users[room].add(sender.bare)
            if sent.tag == "presence":
                self.present[room].add(sender)
            view = before.get(room) or self.view(room)
            if sent.tag == "message" and view is not None and sender in view.occupants:
                for named in sent.iterfind(f"{{{MUC_USER}}}x/*"):
                    addressee = _jid(named.get("to"))
                    if addressee is not None and etree.QName(named).localname in ("invite", "decline"):
                        self.named[room].add(addressee.bare)
        self.wire.feed(data)
        return self.check(before)

    def _rooms(self) -> list[JID]:
        return [JID(room, DOMAIN) for room in ROOMS]

    def check(self, before: dict[JID, RoomView | None]) -> list[etree._Element]:
        assert self.wire.up, "the component closed the stream"
        out = self.wire.stanzas()
        assert not self.failures, self.failures[0]
        after = {jid: self._view_after(jid, before.get(jid)) for jid in self._rooms()}
        for stanza in out:
            text = etree.tostring(stanza, encoding="unicode")
            to, origin = _jid(stanza.get("to")), _jid(stanza.get("from"))
            assert to is not None and origin is not None, text
            # An occupant's own error to a query passed on through the room is its word, not ours.
            relayed = stanza.tag.endswith("}iq") and origin.resource is not None
            failed = stanza.get("type") == "error" and stanza.find(f"{{*}}error/{{{ERR}}}internal-server-error") is not None
            assert relayed or not failed, text
            if stanza.tag.endswith("}iq") and stanza.get("type") in ("get", "set"):
                self.requests.append(stanza)
            elif stanza.get("type") != "error" and not stanza.tag.endswith("}iq"):
                self.bounceable.append(stanza)
            if origin.node is None or to.domain == DOMAIN:
                continue
            room = origin.bare
            allowed = to.bare in self.users[room] or to.bare in self.named[room]
            assert allowed, f"{room} sent a stanza to {to}, who never sent it anything: {text}"
            if stanza.tag.endswith("}presence") or stanza.get("type") == "groupchat":
                assert to in self.present[room], f"{room} sent {to} a stanza meant for occupants: {text}"
            # An error echoes the recipient's own stanza, and a message from an
            # occupant carries what its sender wrote: neither is the room's word.
            if stanza.get("type") != "error" and not (origin.resource is not None and stanza.tag.endswith("}message")):
                self._check_anonymity(room, to, stanza, text, before.get(room), after.get(room))
        del self.requests[:-8], self.bounceable[:-8]
        return out

    def _check_anonymity(
        self, room: JID, to: JID, stanza: etree._Element, text: str, before: RoomView | None, after: RoomView | None
    ) -> None:
        def hidden(view: RoomView | None) -> bool:
            # A room not in memory has no occupants; it may have been in the room only briefly.
            return view is None or (view.anonymous and to not in view.moderators)

        if not (hidden(before) and hidden(after)) or (before is None and after is None):
            return
        shown = [item.get("jid") for item in stanza.iter(_ITEM_JID) if item.get("jid") is not None]
        shown += [
            value.text for form_field in stanza.iter(_FIELD) if form_field.get("var") == "muc#jid"
            for value in form_field if value.text
        ]
        for jid in shown:
            real = _jid(jid)
            assert real is None or real.bare == to.bare, (
                f"{room} showed {jid} to {to}, no moderator of a semi-anonymous room: {text}"
            )

    def answer(self, step: Answer) -> None:
        if not self.requests:
            return
        request = self.requests[-1 - step.back % len(self.requests)]
        sender = "stranger@elsewhere.lit/x" if step.spoofed else request.get("to")
        if step.error is None:
            self.feed(f"<iq type='result'{attr('from', sender)}{attr('to', request.get('from'))}{attr('id', request.get('id'))}/>")
        else:
            error = element("error", None, " type='cancel'", element(step.error, ERR))
            self.feed(
                f"<iq type='error'{attr('from', sender)}{attr('to', request.get('from'))}{attr('id', request.get('id'))}>"
                f"{error}</iq>"
            )

    def bounce(self, step: Bounce) -> None:
        if not self.bounceable:
            return
        original = self.bounceable[-1 - step.back % len(self.bounceable)]
        kind = etree.QName(original).localname
        error = element("error", None, " type='cancel'", element(step.condition, ERR))
        self.feed(f"<{kind} type='error'{attr('from', original.get('to'))}{attr('to', original.get('from'))}>{error}</{kind}>")

    def tick(self, step: Tick) -> None:
        before = {jid: self.view(jid) for jid in self._rooms()}
        self.wire.clock.advance(step.seconds)
        self.check(before)


def _submit(owner: str, room: str, fields: tuple[str, ...]) -> str:
    return (
        f"<iq from='{owner}' to='{room}@{DOMAIN}' type='set' id='create'><query xmlns='{MUC_OWNER}'>"
        f"<x xmlns='jabber:x:data' type='submit'>{field('FORM_TYPE', [ROOMCONFIG], 'hidden')}{''.join(fields)}"
        f"{field('muc#roomconfig_roomsecret', ['cauldronburn'])}</x>"
        "</query></iq>"
    )


def run_scenario(scenario: Scenario) -> None:
    """Set up the rooms, run the steps, and check every property after each."""
    wire = ServerWire(DOMAIN, (MucService, {"lock_seconds": 300.0}), storage=immediate_storage())
    checker = Checker(wire)
    globalLogPublisher.addObserver(checker.observe)
    try:
        for setup in scenario.setups:
            checker.feed(f"<presence from='{setup.owner}' to='{setup.room}@{DOMAIN}/owner'><x xmlns='{MUC}'/></presence>")
            checker.feed(_submit(setup.owner, setup.room, setup.fields))
            for guest, nick in setup.guests:
                password = "<password>cauldronburn</password>"
                checker.feed(f"<presence from='{guest}' to='{setup.room}@{DOMAIN}/{nick}'><x xmlns='{MUC}'>{password}</x></presence>")
        actions = {Answer: checker.answer, Bounce: checker.bounce, Tick: checker.tick}
        for step in scenario.steps:
            if isinstance(step, Send):
                checker.feed(step.xml())
            else:
                actions[type(step)](step)
    except AssertionError as error:
        trail = "\n".join(checker.log[-12:])
        raise AssertionError(f"{error}\n-- the last stanzas fed:\n{trail}") from None
    finally:
        globalLogPublisher.removeObserver(checker.observe)


EXAMPLES = int(os.environ.get("NETHERFIELD_FUZZ_EXAMPLES", "0")) or 400


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("NETHERFIELD_FUZZ_EXAMPLES"),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios())
def test_no_sequence_of_stanzas_breaks_the_stream_or_a_room_s_isolation(scenario: Scenario) -> None:
    run_scenario(scenario)
