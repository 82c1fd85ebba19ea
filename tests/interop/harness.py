"""Play one MUC scenario against several MUC services and compare what each client received.

A *side* is a MUC service and the server its users log in on: Prosody's own
MUC (``muc.localhost``, the oracle), our MUC behind the same Prosody
(``conference.localhost``), our MUC behind ejabberd. A scenario is an async
function of a :class:`Side`; it logs in *actors* (the same user names on every
server), sends them raw XML written once with placeholders (``{room}``,
``{svc}``, ``{alice}``, ``{alice/1}``), and after each step waits until every
actor got everything the step caused (:meth:`Side.settle`).

Every stanza an actor receives from the MUC domain (the service or a room
the scenario used; the barriers' answers excepted) is recorded, then
normalised (:func:`normalise`) so that what may differ between two correct
services without anyone noticing is masked, and :func:`compare` lines the
logs up per actor. Exactly this is masked, and nothing else:

- addresses (``from``, ``to``, ``jid``, ``by``): the MUC domain becomes
  ``MUC`` (in text too); a user's resource keeps only its session number;
- ``id`` of a stanza the scenario did not number (``t-…``) becomes ``*``;
  ``delay`` stamps (XEP-0203's and legacy ``jabber:x:delay``) become ``*``;
  ``xml:lang`` is dropped; namespace prefixes (elements are compared by
  namespace and name);
- dropped as free wording: ``stanza-id`` elements, an error's ``<text/>``,
  a form's ``<title/>``, ``<instructions/>`` and ``<desc/>``, the
  registration's ``<instructions/>``, and the ``label`` of every form
  field and option; ``type='text-single'`` (XEP-0004's default) too;
- order: attributes; the children of every ``jabber:client`` and
  ``muc#user`` element (status codes, items); the children of each form
  field (its values and options, sorted together); an iq result's payload
  is one line per child and, in a data form, one line per field, sorted,
  so the order of disco features and of a form's fields is not compared;
  a run of other occupants' presences (no 110) is sorted;
- whitespace around text.

The test file's rewrites mask more, each with its reason (occupant ids by
value, for one).
"""

from __future__ import annotations

import asyncio
import difflib
import itertools
import re
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import attrs
import slixmpp
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

__all__ = ["Actor", "Allowed", "Rewrite", "Side", "compare", "normalise", "play", "used_entries"]

CLIENT = "jabber:client"
MUC_USER = "http://jabber.org/protocol/muc#user"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
SID = "urn:xmpp:sid:0"
DELAY = "urn:xmpp:delay"
LEGACY_DELAY = "jabber:x:delay"
DATA = "jabber:x:data"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
#: The ids the scenarios give their stanzas start with this; all others are the services' own.
OUR_ID = "t-"
_BARRIER = "barrier-"
# Children that are free wording (or our stanza-ids, see normalise): never compared.
_WORDING = frozenset({
    f"{{{SID}}}stanza-id", f"{{{STANZAS}}}text", f"{{{DATA}}}desc", f"{{{DATA}}}title", f"{{{DATA}}}instructions",
    "{jabber:iq:register}instructions",
})
_barriers = itertools.count(1)


class ScenarioError(AssertionError):
    """An actor did not get an answer in time."""


class Actor:
    """One logged-in client of a scenario, recording what the MUC domain sends it."""

    def __init__(self, side: Side, name: str, session: int, password: str) -> None:
        self.side = side
        self.name = name
        self.label = f"{name}/{session}"
        self.jid = f"{name}@{side.server.domain}/{side.tag}{session}"
        self.xmpp = slixmpp.ClientXMPP(
            self.jid, password, plugin_config={"feature_mechanisms": {"unencrypted_plain": True}}
        )
        self.xmpp.enable_starttls = False
        self.xmpp.enable_direct_tls = False
        self.xmpp.enable_plaintext = True
        #: Everything received from the MUC domain, in order, as raw elements.
        self.received: list[ET.Element] = []
        self._waiters: dict[str, asyncio.Future[ET.Element]] = {}
        for kind in ("message", "presence", "iq"):
            self.xmpp.register_handler(
                Callback(f"record {kind}", MatchXPath(f"{{{CLIENT}}}{kind}"), self._record)
            )

    def _record(self, stanza: StanzaBase) -> None:
        element = stanza.xml
        sender = (element.get("from") or "").partition("/")[0]
        if sender != self.side.service and sender not in self.side.room_jids():
            return  # not this scenario's: another side, or another scenario's room
        stanza_id = element.get("id") or ""
        waiter = self._waiters.pop(stanza_id, None) if element.tag == f"{{{CLIENT}}}iq" else None
        if not stanza_id.startswith(_BARRIER):
            self.received.append(element)
        if waiter is not None and not waiter.done():
            waiter.set_result(element)

    async def login(self, timeout: float = 15.0) -> None:
        started = self.xmpp.wait_until("session_start", timeout)
        self.xmpp.connect(self.side.server.host, self.side.server.c2s_port)
        try:
            await started
        except TimeoutError:
            raise ScenarioError(f"{self.jid} did not log in on {self.side.server!r}") from None
        self.xmpp.send_raw("<presence/>")

    async def logout(self) -> None:
        self.xmpp.cancel_connection_attempt()
        if self.xmpp.transport is not None:
            try:
                await asyncio.wait_for(self.xmpp.disconnect(wait=2.0), 5.0)
            except TimeoutError:
                self.xmpp.abort()

    def send(self, xml: str) -> None:
        """Send a stanza written with the side's placeholders."""
        self.side.last_sender = self
        self.xmpp.send_raw(self.side.fill(xml))

    async def iq(self, xml: str, timeout: float = 10.0) -> ET.Element:
        """Send an iq (its id must be given) and wait for the answer, which is recorded too."""
        filled = self.side.fill(xml)
        stanza_id = ET.fromstring(filled.replace(">", " xmlns='jabber:client'>", 1)).get("id")
        assert stanza_id, "an iq needs an id to be waited for"
        return await self._request(filled, stanza_id, timeout)

    async def _request(self, filled: str, stanza_id: str, timeout: float) -> ET.Element:
        if not stanza_id.startswith(_BARRIER):
            self.side.last_sender = self
        future: asyncio.Future[ET.Element] = asyncio.get_running_loop().create_future()
        self._waiters[stanza_id] = future
        self.xmpp.send_raw(filled)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise ScenarioError(f"{self.label} on {self.side.tag}: no answer to {filled}") from None

    async def barrier(self, to: str) -> None:
        """Wait until everything the MUC sent this actor before now has arrived.

        The answer to an iq to the room comes after whatever the room sent
        before it: the service handles a room's stanzas in order, and the
        server delivers them in order.
        """
        stanza_id = f"{_BARRIER}{next(_barriers)}"
        xml = (
            f"<iq type='get' id='{stanza_id}' to='{to}'>"
            "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        )
        await self._request(xml, stanza_id, 10.0)


@attrs.define
class Side:
    """One MUC service and the server its scenario's users log in on."""

    tag: str
    server: Any
    service: str
    passwords: dict[str, str]
    actors: list[Actor] = attrs.field(factory=list)
    last_sender: Actor | None = None
    rooms: list[str] = attrs.field(factory=list)
    _sessions: dict[str, Iterator[int]] = attrs.field(factory=dict)

    def fill(self, xml: str) -> str:
        """Put this side's addresses in for the placeholders."""

        def address(match: re.Match[str]) -> str:
            name, _, session = match.group(1).partition("/")
            if name == "room":
                return f"{self.rooms[0]}@{self.service}" if self.rooms else f"room@{self.service}"
            if name == "svc":
                return self.service
            if name.startswith("room:"):
                return f"{name[5:]}@{self.service}"
            jid = f"{name}@{self.server.domain}"
            return f"{jid}/{self.tag}{session}" if session else jid

        return re.sub(r"\{([a-z0-9:]+(?:/[0-9]+)?)\}", address, xml)

    async def login(self, name: str) -> Actor:
        """Log `name` in with a new session (its resource numbers count up per scenario)."""
        sessions = self._sessions.setdefault(name, itertools.count(1))
        actor = Actor(self, name, next(sessions), self.passwords[name])
        await actor.login()
        self.actors.append(actor)
        return actor

    def room_jids(self) -> set[str]:
        """The rooms this scenario used so far."""
        return {f"{local}@{self.service}" for local in self.rooms}

    def room(self, local: str) -> str:
        """Use the room `local` for ``{room}`` from now on."""
        self.rooms.insert(0, local)
        return f"{local}@{self.service}"

    async def settle(self) -> None:
        """Wait until every actor has everything the last step caused.

        The actor who sent last goes first, so that its stanza reaches the
        room before anyone's barrier: the step happens as written, whatever
        the timing.
        """
        target = self.fill("{room}")
        first = [self.last_sender] if self.last_sender is not None else []
        for actor in first + [actor for actor in self.actors if actor is not self.last_sender]:
            if actor.xmpp.transport is not None:
                await actor.barrier(target)

    async def close(self) -> None:
        await asyncio.gather(*(actor.logout() for actor in self.actors))


Scenario = Callable[[Side], Awaitable[None]]


async def play(scenario: Scenario, side: Side) -> dict[str, list[str]]:
    """Run a scenario on one side; return each actor's normalised log."""
    try:
        await scenario(side)
        await side.settle()
        # Taken before anyone logs out: who sees whom leave at the end is a race.
        received = {actor.label: list(actor.received) for actor in side.actors}
    finally:
        await side.close()
    return {label: normalise(elements, side) for label, elements in received.items()}


# -- normalisation ----------------------------------------------------------------


def normalise(received: list[ET.Element], side: Side) -> list[str]:
    """What an actor received, with what may vary between correct services masked.

    - ids the services make up (any ``id`` the scenario did not give) are ``*``;
    - ``delay`` stamps are ``*``, and ``stanza-id`` elements are dropped (ours
      adds them, Prosody's MUC does so only with MAM loaded);
    - the MUC domain is ``MUC``, users' resources keep only their session number;
    - the children of each stanza, of a ``muc#user`` element (status codes)
      and of a form field (values, options) are sorted (their order carries
      no meaning);
    - error ``text``, ``xml:lang``, and the labels (of fields and options),
      descriptions, titles and instructions of forms are dropped (wording is
      free), and a form field's ``text-single`` type too (it is the default);
    - an iq result's payload is split into one line per child (per field
      of a data form) and those lines are sorted;
    - within a run of other occupants' presences the order is free (§7.2.3
      sets none), so such runs are sorted.
    """
    lines: list[str] = []
    for element in received:
        lines.extend(_lines(_masked(copy_of(element), side)))
    return _sort_presence_runs(lines)


def _lines(element: ET.Element) -> list[str]:
    """One line per stanza; an iq result's payload (disco, forms, lists) one line per child, sorted.

    So that one feature or one form field more or less is one difference,
    not a whole iq.
    """
    if element.tag != f"{{{CLIENT}}}iq" or len(element) == 0 or element.get("type") == "error":
        return [_canonical(element)]
    payload = next((child for child in element if not child.tag.endswith("}error")), None)
    if payload is None or len(payload) == 0:
        return [_canonical(element)]
    parts: list[str] = []
    for child in list(payload):
        payload.remove(child)
        if child.tag == f"{{{DATA}}}x":
            fields = [field for field in child if field.tag == f"{{{DATA}}}field"]
            for field in fields:
                child.remove(field)
            parts.extend(f"  x > {_canonical(field, DATA)}" for field in fields)
        parts.append(f"  > {_canonical(child, _namespace(payload))}")
    head = _canonical(element)
    return [head, *(f"{element.get('id')}{part}" for part in sorted(parts))]


def _namespace(element: ET.Element) -> str:
    return element.tag[1:].partition("}")[0] if element.tag.startswith("{") else ""


def copy_of(element: ET.Element) -> ET.Element:
    return ET.fromstring(ET.tostring(element))


def _mask_address(value: str, side: Side) -> str:
    bare, slash, resource = value.partition("/")
    local, at, domain = bare.rpartition("@")
    if domain == side.service:
        return f"{local}{at}MUC{slash}{resource}"
    if domain == side.server.domain and at and slash:
        # Our resources are the side's tag and the session number: keep the number.
        return f"{local}@{domain}/{resource.removeprefix(side.tag)}"
    return value


def _masked(element: ET.Element, side: Side) -> ET.Element:
    for attribute in ("from", "to", "jid", "by"):
        if attribute in element.attrib:
            element.set(attribute, _mask_address(element.get(attribute, ""), side))
    stanza_id = element.get("id")
    if stanza_id is not None and element.tag.startswith("{jabber:client}") and not stanza_id.startswith(OUR_ID):
        element.set("id", "*")
    element.attrib.pop(XML_LANG, None)
    if element.tag in (f"{{{DELAY}}}delay", f"{{{LEGACY_DELAY}}}x"):
        element.set("stamp", "*")
    if element.tag in (f"{{{DATA}}}field", f"{{{DATA}}}option"):
        element.attrib.pop("label", None)
        if element.get("type") == "text-single":
            del element.attrib["type"]  # the default type (XEP-0004 §3.3)
    for child in list(element):
        if child.tag in _WORDING:
            element.remove(child)
        else:
            _masked(child, side)
    if element.text is not None:
        text = element.text
        for domain in (side.service,):
            text = text.replace(domain, "MUC")
        element.text = text
    return element


def _canonical(element: ET.Element, parent_ns: str = "") -> str:
    namespace, _, local = element.tag[1:].partition("}") if element.tag.startswith("{") else ("", "", element.tag)
    attributes = sorted(
        (key.rpartition("}")[2] if key.startswith("{") else key, value) for key, value in element.attrib.items()
    )
    head = local
    if namespace != parent_ns:
        head += f' xmlns="{namespace}"'
    for key, value in attributes:
        head += f' {key}="{value}"'
    children = [_canonical(child, namespace) for child in element]
    if namespace in (CLIENT, MUC_USER) or element.tag == f"{{{DATA}}}field":
        children.sort()
    text = (element.text or "").strip()
    if not children and not text:
        return f"<{head}/>"
    return f"<{head}>{_escape(text)}{''.join(children)}</{local}>"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _is_others_presence(line: str) -> bool:
    """Another occupant's presence (not one's own, 110, nor an error)."""
    return line.startswith("<presence") and 'code="110"' not in line


def _sort_presence_runs(lines: list[str]) -> list[str]:
    out: list[str] = []
    run: list[str] = []
    for line in lines:
        if _is_others_presence(line):
            run.append(line)
            continue
        out.extend(sorted(run))
        run = []
        out.append(line)
    out.extend(sorted(run))
    return out


# -- comparison ----------------------------------------------------------------


@attrs.frozen
class Allowed:
    """A known difference: stanzas only the oracle sends, or only we send, and why that is right.

    `expected` and `actual` are regular expressions matched against the
    normalised lines (of the actor `actor`, or any actor when None) of the
    scenario `scenario` (of every scenario when None).
    """

    scenario: str | None
    reason: str
    expected: tuple[str, ...] = ()
    actual: tuple[str, ...] = ()
    actor: str | None = None


@attrs.frozen
class Rewrite:
    """A known difference inside stanzas both send: `pattern` becomes `replacement` in one side's lines.

    `side` is ``expected`` (the oracle's lines), ``actual`` (ours) or ``both``.
    """

    reason: str
    pattern: str
    replacement: str | Callable[[re.Match[str]], str] = ""
    side: str = "expected"


def rewrite(
    logs: dict[str, list[str]], rewrites: list[Rewrite], side: str, used: set[int]
) -> dict[str, list[str]]:
    """`logs` with the rewrites for `side` applied; the indices of those that changed something go in `used`."""
    out: dict[str, list[str]] = {}
    for label, lines in logs.items():
        new: list[str] = []
        for line in lines:
            for index, entry in enumerate(rewrites):
                if entry.side not in (side, "both"):
                    continue
                line, count = re.subn(entry.pattern, entry.replacement, line)
                if count:
                    used.add(index)
            if line:  # a line rewritten to nothing is gone
                new.append(line)
        out[label] = _sort_presence_runs(new)
    return out


def compare(
    scenario: str,
    expected: dict[str, list[str]],
    actual: dict[str, list[str]],
    allowed: list[Allowed],
    rewrites: list[Rewrite] = (),  # type: ignore[assignment]
) -> tuple[list[str], list[Allowed]]:
    """Differences between two runs that no entry of `allowed` covers, and the scenario's entries that covered nothing.

    Both sides' lines are rewritten first; then lines are aligned per
    actor, and a line only one side has must match one of the allowed
    patterns for that side. Entries for every scenario (None) are not
    reported as unused here: see :func:`unused_everywhere`.
    """
    rewrites = list(rewrites)
    expected = rewrite(expected, rewrites, "expected", set())
    actual = rewrite(actual, rewrites, "actual", set())
    used: set[int] = set()
    problems: list[str] = []
    for label in sorted(set(expected) | set(actual)):
        left, right = expected.get(label, []), actual.get(label, [])
        matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            if op == "equal":
                continue
            for line in left[i1:i2]:
                if not _covered(scenario, allowed, used, label, line, "expected"):
                    problems.append(f"{scenario}: {label} missed  {line}")
            for line in right[j1:j2]:
                if not _covered(scenario, allowed, used, label, line, "actual"):
                    problems.append(f"{scenario}: {label} extra   {line}")
    unused = [entry for index, entry in enumerate(allowed) if entry.scenario == scenario and index not in used]
    return problems, unused


def used_entries(
    runs: list[tuple[str, dict[str, list[str]], dict[str, list[str]]]],
    allowed: list[Allowed],
    rewrites: list[Rewrite],
) -> tuple[set[int], set[int]]:
    """Which entries of `allowed` and `rewrites` some scenario of `runs` needs."""
    used_rewrites: set[int] = set()
    used_allowed: set[int] = set()
    for scenario, expected, actual in runs:
        expected = rewrite(expected, rewrites, "expected", used_rewrites)
        actual = rewrite(actual, rewrites, "actual", used_rewrites)
        for label in set(expected) | set(actual):
            left, right = expected.get(label, []), actual.get(label, [])
            matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
            for op, i1, i2, j1, j2 in matcher.get_opcodes():
                if op != "equal":
                    for line in left[i1:i2]:
                        _covered(scenario, allowed, used_allowed, label, line, "expected")
                    for line in right[j1:j2]:
                        _covered(scenario, allowed, used_allowed, label, line, "actual")
    return used_allowed, used_rewrites


def _covered(scenario: str, entries: list[Allowed], used: set[int], label: str, line: str, which: str) -> bool:
    for index, entry in enumerate(entries):
        if entry.scenario not in (None, scenario):
            continue
        if entry.actor is not None and not label.startswith(entry.actor):
            continue
        if any(re.search(pattern, line) for pattern in getattr(entry, which)):
            used.add(index)
            return True
    return False
