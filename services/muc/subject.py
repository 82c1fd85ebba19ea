"""The room's subject (XEP-0045 §8.1) as the room keeps it: the text, who set it, and when.

It is stored with the room; every newcomer gets it last (§7.2.16) as a
message from the occupant who set it, dated with a XEP-0203 ``<delay/>``
(as Prosody's) when it was last modified: the same subject set again by the
same nick keeps its time. Who may change it, and the change itself, are the subject
feature's (:mod:`services.muc.features.subject`).
"""

from __future__ import annotations

from lxml import etree

from component.jid import JID
from component.stanza import Broadcast, message
from services.muc.history import delay_bytes
from services.muc.protocol import PARSER

__all__ = ["RoomSubject"]


class RoomSubject:
    """A room's current subject; change it with :meth:`set` once the change is stored."""

    __slots__ = ("_message", "nick", "seconds", "text")

    def __init__(self, text: str = "", nick: str = "", seconds: float | None = None) -> None:
        #: The subject ("" for none).
        self.text = text
        #: The nick of the occupant who set it ("" when the room did, or nobody).
        self.nick = nick
        #: When it was set (its <delay/> on entering); None when it was set before the store kept the time.
        self.seconds = seconds
        self._message: Broadcast | None = None

    def set(self, text: str, nick: str, seconds: float | None) -> None:
        """The subject is now ``text``, set by ``nick`` at ``seconds``."""
        self.text = text
        self.nick = nick
        self.seconds = seconds
        self._message = None

    def modified_at(self, text: str, nick: str, seconds: float) -> float | None:
        """When the subject was last modified once ``nick`` sets ``text`` at ``seconds``.

        Set again as it is, by the nick that set it, it is not modified
        (§7.2.16 dates it "when the subject was last modified"): it keeps
        its time, as in Prosody 0.12 (muc/subject.lib.lua). The change is
        still reflected (§8.1 says MUST); only the newcomers' ``<delay/>``
        stays.
        """
        if text == self.text and nick == self.nick:
            return self.seconds
        return seconds

    def message(self, room: JID, *, keep: bool) -> Broadcast:
        """The message that tells a newcomer the subject, even an empty one (§7.2.16); ``keep`` it serialised for the next."""
        found = self._message
        if found is None:
            # From whoever set it, an empty one too (a cleared subject, as Prosody's);
            # from the room itself when nobody did (§7.2.16).
            sender = f"{room}/{self.nick}" if self.nick else str(room)
            # The subject was set earlier: it says when, as a delayed message does (XEP-0203; Prosody too).
            delay = []
            if self.seconds is not None:
                delay = [etree.fromstring(delay_bytes(str(room), self.seconds), PARSER)]
            found = Broadcast(message(sender, "", type="groupchat", subject=self.text, payload=delay))
            if keep:
                self._message = found
        return found
