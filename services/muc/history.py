"""Discussion history (XEP-0045 §7.2.15): the last messages, replayed to who enters.

Each entry is the reflected message, serialised once (as a :class:`Broadcast`),
so that replaying it costs only the splice of the recipient's address and of
its XEP-0203 delay.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from datetime import datetime

from lxml import etree

from component import namespaces as ns
from component.errors import StanzaError, whole_number
from component.jid import JID
from component.output import EAGER_BYTES, Piece, Rendered
from component.stanza import Broadcast, Stanza, address, parse_sent
from services.muc.protocol import PARSER, stamp
from services.muc.store import MESSAGE, HistoryRecord

__all__ = ["History", "HistoryEntry", "HistoryRequest", "archive_record", "parse_request"]



_DELAY = f"{{{ns.DELAY}}}delay"


def delay_bytes(room: str, seconds: float) -> bytes:
    """The XEP-0203 ``<delay/>`` of a replayed message, serialised."""
    return f'<delay xmlns="{ns.DELAY}" from="{room}" stamp="{stamp(seconds)}"/>'.encode()


class HistoryEntry:
    """One archived message: the reflection as it was sent, and when.

    The delay is spliced in when the message is replayed, so archiving a
    message costs nothing beyond the reflection that was serialised anyway.
    """

    __slots__ = ("_delay", "message", "room", "seconds", "stanza_id")

    def __init__(self, message: Broadcast, seconds: float, room: str, stanza_id: str = "") -> None:
        self.message = message
        self.seconds = seconds
        self.room = room
        #: Its XEP-0359 stanza-id: its archive id.
        self.stanza_id = stanza_id
        self._delay: bytes | None = None  # formatted on the first replay: most entries are never replayed

    @property
    def delay(self) -> bytes:
        """The serialised ``<delay/>`` spliced into each replay."""
        if self._delay is None:
            self._delay = delay_bytes(self.room, self.seconds)
        return self._delay

    @property
    def size(self) -> int:
        """The length of a replay without its address, as ``maxchars`` counts it."""
        return self.message.size + len(self.delay)

    def to(self, recipient: bytes) -> bytes:
        """The message with its delay, addressed to an escaped address."""
        whole = self.message.to_address(recipient)
        close = whole.rindex(b"</")
        return whole[:close] + self.delay + whole[close:]

    def text(self) -> str:
        """The message as the store keeps it: as reflected, without ``to`` (its time is a column of its own).

        As sent, it does not declare ``jabber:component:accept``: :func:`parse_sent` reads it back.
        """
        return self.message.untargeted().decode()

    def record(self) -> HistoryRecord:
        """The entry as the store keeps it (for a room that just became persistent)."""
        element = parse_sent(self.message.to("nobody@invalid"), PARSER)
        found = element.find(f"{{{ns.STANZA_ID}}}stanza-id")
        stanza_id = found.get("id", "") if found is not None else ""
        nick = (element.get("from") or "").partition("/")[2]
        return HistoryRecord(stanza_id, nick, None, self.text(), self.seconds)

    @classmethod
    def parse(cls, text: str, seconds: float, room: str, stanza_id: str = "") -> HistoryEntry:
        """An entry from its stored text (rows stored before the archive carry their delay, which goes)."""
        element = parse_sent(text.encode(), PARSER)
        for found in element.findall(_DELAY):
            element.remove(found)
        return cls(Broadcast(element), seconds, room, stanza_id)


def archive_record(
    stanza: Stanza, entry: HistoryEntry, nick: str, *, occupant_id: str | None, jid_public: bool, kind: int = MESSAGE
) -> HistoryRecord:
    """The archive's row of a message the room reflects (``entry``): who sent it, as whom, and whether the room showed who.

    ``occupant_id`` is the room's occupant-id the message carries (serialised
    into ``entry``, not in the stanza's element), or None.
    """
    return HistoryRecord(
        entry.stanza_id, nick, str(stanza.sender.bare), entry.text(), entry.seconds, kind=kind,
        occupant_id=occupant_id, jid_public=jid_public,
    )


class HistoryRequest:
    """The limits of a ``<history/>`` element; None means no limit."""

    __slots__ = ("maxchars", "maxstanzas", "since")

    def __init__(self, maxchars: int | None = None, maxstanzas: int | None = None, since: float | None = None) -> None:
        self.maxchars = maxchars
        self.maxstanzas = maxstanzas
        self.since = since


def _number(history: etree._Element, name: str) -> int | None:
    value = history.get(name)
    if value is None:
        return None
    return whole_number(value, f"history {name}", "bad-request")


def parse_request(history: etree._Element | None, now: float) -> HistoryRequest:
    """Read ``<history maxchars maxstanzas seconds since/>``; the strictest limit wins."""
    if history is None:
        return HistoryRequest()
    since: float | None = None
    text = history.get("since")
    if text is not None:
        try:
            since = datetime.fromisoformat(text).timestamp()
        except ValueError:
            raise StanzaError("bad-request", text="history since must be an XEP-0082 DateTime") from None
    seconds = _number(history, "seconds")
    if seconds is not None:
        since = max(since or 0.0, now - seconds)
    return HistoryRequest(_number(history, "maxchars"), _number(history, "maxstanzas"), since)


class History:
    """The last ``length`` messages of a room."""

    __slots__ = ("_entries", "_length")

    def __init__(self, length: int) -> None:
        self._length = max(length, 0)
        # Created with the first message: a silent room costs no buffer.
        self._entries: deque[HistoryEntry] | None = None

    def __len__(self) -> int:
        return len(self._entries) if self._entries is not None else 0

    def __iter__(self) -> Iterator[HistoryEntry]:
        return iter(self._entries or ())

    @property
    def length(self) -> int:
        """How many messages are kept."""
        return self._length

    def resize(self, length: int) -> None:
        """Keep at most ``length`` messages from now on (the newest ones)."""
        self._length = max(length, 0)
        if self._entries is not None:
            self._entries = deque(self._entries, maxlen=self._length)

    def add(self, entry: HistoryEntry) -> None:
        """Append a message, forgetting the oldest beyond the length."""
        if not self._length:
            return
        if self._entries is None:
            self._entries = deque(maxlen=self._length)
        self._entries.append(entry)

    def clear(self) -> None:
        """Forget everything."""
        self._entries = None

    def drop(self, stanza_id: str) -> bool:
        """Forget the message with this stanza-id (retracted or moderated); whether it was kept."""
        entries = self._entries
        if not entries or not stanza_id:
            return False
        for entry in entries:
            if entry.stanza_id == stanza_id:
                entries.remove(entry)
                return True
        return False

    @staticmethod
    def replay(entries: list[HistoryEntry], to: JID) -> Piece:
        """``entries`` (from :meth:`select`) replayed to ``to``: built now when small, else as the link drains."""
        recipient = address(to)
        size = sum(entry.size for entry in entries) + len(recipient) * len(entries)
        if size <= EAGER_BYTES:
            return b"".join([entry.to(recipient) for entry in entries])
        return Rendered(entries, lambda entry: entry.to(recipient), size, b"<message")

    def select(self, request: HistoryRequest, to: JID) -> list[HistoryEntry]:
        """The messages to replay to ``to``, oldest first, within the request's limits."""
        chosen: list[HistoryEntry] = []
        chars = 0
        address_size = len(str(to))
        for entry in reversed(self._entries or ()):
            if request.maxstanzas is not None and len(chosen) >= request.maxstanzas:
                break
            if request.since is not None and entry.seconds < request.since:
                break
            if request.maxchars is not None:
                chars += entry.size + address_size + 6
                if chars > request.maxchars:
                    break
            chosen.append(entry)
        chosen.reverse()
        return chosen
