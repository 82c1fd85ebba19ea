"""A notices bot: an entity with its own roster and presence that pushes headlines to subscribers.

Anyone may subscribe to a bot's presence; the bot approves at once and
subscribes back, so both sides end in ``both``. When a subscriber leaves,
the bot drops its side too and forgets the contact. Admins (bare JIDs from
the config) drive it with chat messages:

``!notice TEXT``
    send TEXT as a ``headline`` message to every subscriber;
``!roster``
    list the bot's contacts with their subscription state and online resources;
``!remove JID``
    end the subscriptions with JID both ways and forget it.

Anyone else who writes to the bot is told how to subscribe. Answers leave
once the roster changes before them are stored, so what ``!roster`` reports
survives a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from component.disco import Identity
from component.host import Host
from component.jid import JID, InvalidJID, parse_jid
from component.presence import Policy, PresenceEntity
from component.roster import Roster
from component.stanza import Broadcast, Stanza, address, message, text_of
from component.subscription import Subscription

__all__ = ["NoticesBot"]

ABOUT = "I send notices to my subscribers. Add me to your contacts to receive them."
HELP = "Commands: !notice TEXT, !roster, !remove JID"


class NoticesBot(PresenceEntity):
    """One bot: approves every subscriber, follows them back, and sends them headlines."""

    policy: Policy = "approve"

    def __init__(
        self,
        component: Host,
        jid: JID,
        roster: Roster | None = None,
        *,
        name: str,
        admins: Collection[JID] = (),
    ) -> None:
        super().__init__(component, jid, roster)
        self.name = name
        self.admins = frozenset(admin.bare for admin in admins)
        self._commands: dict[str, Callable[[str], str]] = {
            "!notice": self.command_notice,
            "!roster": self.command_roster,
            "!remove": self.command_remove,
        }

    def disco_identities(self, node: str | None) -> tuple[Identity, ...]:
        return () if node is not None else (Identity("client", "bot", self.name),)

    # -- subscriptions -----------------------------------------------------

    def on_subscription_changed(self, jid: JID, old: Subscription, new: Subscription) -> None:
        if new.has_from and not old.has_from and not (new.has_to or new.pending_out):
            self.subscribe(jid)  # a new subscriber: follow back, once
        elif old.has_from and not new.has_from and (new.has_to or new.pending_out):
            self.unsubscribe(jid)  # the subscriber left: so does the bot
        elif new.is_none and jid in self.roster:
            self.remove(jid)  # nothing left between them: forget the contact

    # -- notices -----------------------------------------------------------

    def push(self, text: str) -> int:
        """Send ``text`` as a headline to every subscriber; return how many there were."""
        subscribers = self.roster.subscribers()
        if subscribers:
            headline = Broadcast(message(self.jid, self.jid, text, type="headline"))
            self.component.send_bytes(headline.to_each([address(s) for s in subscribers]))
        return len(subscribers)

    # -- messages ----------------------------------------------------------

    def handle_message(self, stanza: Stanza) -> None:
        kind = stanza.type or "normal"
        if kind not in ("chat", "normal"):
            return None  # never answer headlines, groupchat or errors: no loops between bots
        body = text_of(stanza.element, "body")
        if body is None:
            return None
        if stanza.sender.bare in self.admins:
            command, _, argument = body.strip().partition(" ")
            handler = self._commands.get(command)
            answer = HELP if handler is None else handler(argument.strip())
        else:
            answer = ABOUT
        reply = message(self.jid, stanza.sender, answer, type=stanza.type, thread=text_of(stanza.element, "thread"))
        self.send_when_stored(reply)
        return None

    def command_notice(self, text: str) -> str:
        """``!notice TEXT``."""
        if not text:
            return "Usage: !notice TEXT"
        count = self.push(text)
        return f"Sent to {count} subscriber{'s' if count != 1 else ''}."

    def command_roster(self, _: str) -> str:
        """``!roster``: one line per contact, then pending requests."""
        lines = []
        for jid in sorted(self.roster, key=str):
            state = self.roster[jid].state
            line = f"{jid} {state.subscription}"
            if state.pending_out:
                line += " +pending-out"
            if state.pending_in:
                line += " +pending-in"
            resources = self.resources_of(jid)
            if resources:
                line += " online=" + ",".join(sorted(resource or "-" for resource in resources))
            lines.append(line)
        lines.extend(f"{jid} request" for jid in self.roster.requests() if jid not in self.roster)
        return "\n".join(lines) if lines else "No contacts."

    def command_remove(self, argument: str) -> str:
        """``!remove JID``."""
        try:
            jid = parse_jid(argument).bare
        except InvalidJID:
            return "Usage: !remove JID"
        if jid == self.jid:
            return "Usage: !remove JID"
        if jid not in self.roster and jid not in self.roster.requests():
            return f"{jid} is not on my roster."
        self.remove(jid)
        return f"Removed {jid}."
