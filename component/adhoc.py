"""Ad-hoc commands (XEP-0050): the commands a component domain offers, their sessions, and the protocol.

A :class:`Command` is a value: its node, its name, who may run it, and one
or two steps. A command without a form runs at once and answers
``completed``. A command with a form answers ``executing`` with that form and
keeps a session, which the requester's next request (``complete``, or
``execute``, the default action; or ``cancel``) ends. Sessions belong to the
full JID that started them, expire after :data:`SESSION_SECONDS`, and one
user holds at most :data:`MAX_SESSIONS_PER_USER` of them (the oldest goes), so
nothing a user sends makes them grow past a bound.

The component's domain entity lists the commands in disco (only those the
asker may run) and hands ``<command/>`` requests to :meth:`Commands.execute`.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterable

import attrs
from lxml import etree
from twisted.internet.interfaces import IReactorTime

from component import namespaces as ns
from component.disco import Identity, Item, info_element
from component.errors import StanzaError
from component.forms import Form, parse_form
from component.jid import JID

__all__ = [
    "Command", "Commands", "Note", "Outcome", "MAX_SESSIONS_PER_USER", "SESSION_SECONDS", "condition",
]

#: How long a session waits for the requester's next step.
SESSION_SECONDS = 600.0
#: Sessions one user (bare JID) may have open at once; a new one ends the oldest.
MAX_SESSIONS_PER_USER = 5

_COMMAND = f"{{{ns.COMMANDS}}}command"
_X = f"{{{ns.DATA_FORMS}}}x"
_ACTIONS = frozenset({"execute", "cancel", "prev", "next", "complete"})


@attrs.frozen
class Note:
    """A ``<note/>`` for the requester: ``info``, ``warn`` or ``error``."""

    text: str
    type: str = attrs.field(default="info", validator=attrs.validators.in_(("info", "warn", "error")))


@attrs.frozen
class Outcome:
    """What a command answers when it completes: a result form, notes, or both."""

    form: Form | None = None
    notes: tuple[Note, ...] = ()


#: The first step of a two-step command: the form the requester fills in.
AskStep = Callable[[JID], Awaitable[Form]]
#: The last step: given the requester and the submitted form (None for one-step commands).
RunStep = Callable[[JID, Form | None], Awaitable[Outcome]]


@attrs.frozen
class Command:
    """One command at one node of the component domain."""

    node: str
    name: str
    may_run: Callable[[JID], bool]
    run: RunStep
    ask: AskStep | None = None


@attrs.define
class _Session:
    node: str
    owner: JID
    expires: float


def condition(name: str, error: str, text: str | None = None) -> StanzaError:
    """A stanza error with XEP-0050's application condition ``name`` (``bad-payload``, ...)."""
    app = etree.Element(f"{{{ns.COMMANDS}}}{name}", nsmap={None: ns.COMMANDS})
    return StanzaError(error, text=text, app_condition=app)


class Commands:
    """The commands of one component domain and their open sessions."""

    def __init__(
        self,
        clock: IReactorTime,
        *,
        session_seconds: float = SESSION_SECONDS,
        max_sessions_per_user: int = MAX_SESSIONS_PER_USER,
    ) -> None:
        self._clock = clock
        self.session_seconds = session_seconds
        self.max_sessions_per_user = max_sessions_per_user
        self._commands: dict[str, Command] = {}
        # In the order they started, so that the oldest of a user's goes first.
        self._sessions: dict[str, _Session] = {}

    def add(self, command: Command) -> None:
        """Offer ``command``; its node must be free."""
        if command.node in self._commands:
            raise ValueError(f"a command already answers at node {command.node}")
        self._commands[command.node] = command

    def remove(self, node: str) -> None:
        """Stop offering the command at ``node``, and end its sessions."""
        self._commands.pop(node, None)
        for sessionid in [key for key, session in self._sessions.items() if session.node == node]:
            del self._sessions[sessionid]

    def __len__(self) -> int:
        return len(self._commands)

    @property
    def sessions(self) -> int:
        """Sessions open now (expired ones are forgotten as new ones start)."""
        return len(self._sessions)

    def available_to(self, jid: JID) -> list[Command]:
        """The commands ``jid`` may run, by name."""
        return sorted((c for c in self._commands.values() if c.may_run(jid)), key=lambda c: c.name)

    # -- discovery (XEP-0050 §2) ---------------------------------------------

    def disco_items(self, domain: JID, jid: JID) -> list[Item]:
        """The items of node ``http://jabber.org/protocol/commands``: what ``jid`` may run."""
        return [Item(str(domain), command.name, command.node) for command in self.available_to(jid)]

    def answers_disco(self, node: str | None) -> bool:
        """Whether disco#info of ``node`` is about commands."""
        return node == ns.COMMANDS or node in self._commands

    def disco_info(self, node: str, jid: JID) -> etree._Element:
        """disco#info of the command list, or of one command ``jid`` may run."""
        if node == ns.COMMANDS:
            return info_element([Identity("automation", "command-list", "Commands")], [ns.COMMANDS], node=node)
        command = self._commands.get(node)
        if command is None or not command.may_run(jid):
            raise StanzaError("item-not-found")
        identity = Identity("automation", "command-node", command.name)
        return info_element([identity], [ns.COMMANDS, ns.DATA_FORMS], node=node)

    # -- execution (XEP-0050 §3, §4) -------------------------------------------

    async def execute(self, sender: JID, request: etree._Element) -> etree._Element:
        """Answer one ``<command/>`` request from ``sender``: the ``<command/>`` of the result."""
        node = request.get("node")
        if not node:
            raise StanzaError("bad-request", text="a command request needs a node")
        command = self._commands.get(node)
        if command is None:
            raise StanzaError("item-not-found", text="no command at that node")
        if not command.may_run(sender):
            raise StanzaError("forbidden", text="only the service's admins may run this command")
        action = request.get("action") or "execute"
        if action not in _ACTIONS:
            raise condition("malformed-action", "bad-request", f"{action!r} is not an action")
        sessionid = request.get("sessionid")
        if sessionid is None:
            if action != "execute":
                raise condition("bad-action", "bad-request", "a command starts with execute")
            return await self._start(command, sender)
        self._take(sessionid, command, sender)
        if action == "cancel":
            return _reply(node, sessionid, "canceled")
        if action not in ("execute", "complete"):
            raise condition("bad-action", "bad-request", "this command offers complete and cancel")
        x = request.find(_X)
        if x is None or x.get("type") != "submit":
            raise condition("bad-payload", "bad-request", "submit the command's form")
        outcome = await command.run(sender, parse_form(x))
        return _reply(node, sessionid, "completed", form=outcome.form, notes=outcome.notes)

    async def _start(self, command: Command, sender: JID) -> etree._Element:
        sessionid = secrets.token_hex(8)
        if command.ask is None:
            outcome = await command.run(sender, None)
            return _reply(command.node, sessionid, "completed", form=outcome.form, notes=outcome.notes)
        form = await command.ask(sender)
        self._open(sessionid, command.node, sender)
        return _reply(command.node, sessionid, "executing", form=form, actions=True)

    def _open(self, sessionid: str, node: str, owner: JID) -> None:
        now = self._clock.seconds()
        for key in [key for key, session in self._sessions.items() if session.expires <= now]:
            del self._sessions[key]
        bare = owner.bare
        mine = [key for key, session in self._sessions.items() if session.owner.bare == bare]
        for key in mine[: max(0, len(mine) - self.max_sessions_per_user + 1)]:
            del self._sessions[key]
        self._sessions[sessionid] = _Session(node, owner, now + self.session_seconds)

    def _take(self, sessionid: str, command: Command, sender: JID) -> None:
        """End the session ``sessionid``, which must be ``sender``'s, for ``command``, and alive."""
        session = self._sessions.get(sessionid)
        if session is None or session.owner != sender or session.node != command.node:
            raise condition("bad-sessionid", "bad-request", "no such session")
        del self._sessions[sessionid]
        if session.expires <= self._clock.seconds():
            raise condition("session-expired", "not-allowed", "the session expired; execute the command again")


def _reply(
    node: str,
    sessionid: str,
    status: str,
    *,
    form: Form | None = None,
    notes: Iterable[Note] = (),
    actions: bool = False,
) -> etree._Element:
    """The ``<command/>`` of a reply: actions, then notes, then the form (XEP-0050's schema order)."""
    reply = etree.Element(_COMMAND, node=node, sessionid=sessionid, status=status, nsmap={None: ns.COMMANDS})
    if actions:
        offered = etree.SubElement(reply, f"{{{ns.COMMANDS}}}actions", execute="complete")
        etree.SubElement(offered, f"{{{ns.COMMANDS}}}complete")
    for note in notes:
        etree.SubElement(reply, f"{{{ns.COMMANDS}}}note", type=note.type).text = note.text
    if form is not None:
        reply.append(form.to_element())
    return reply
