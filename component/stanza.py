"""The stanza model: a parsed view of message, presence and iq elements, and builders.

Stanzas stay lxml elements end to end; :class:`Stanza` only adds the parsed
addresses the router needs. Every builder sets both ``from`` and ``to``:
ejabberd closes the stream on a stanza that lacks either.
"""

from __future__ import annotations

import copy
import itertools
import re
import secrets
import time
from collections.abc import Iterable, Sequence

import attrs
from lxml import etree

from component import namespaces as ns
from component.errors import StanzaError
from component.jid import JID
from component.output import EAGER_BYTES

__all__ = [
    "Broadcast", "Fanout", "Spliced", "Stanza", "MESSAGE", "PRESENCE", "IQ", "message", "presence", "iq",
    "result_reply",
    "result_reply_bytes", "message_bytes", "error_reply", "new_id", "child", "text_of", "stamp", "address", "splice",
    "in_stream", "parse_sent",
]

MESSAGE = f"{{{ns.COMPONENT}}}message"
PRESENCE = f"{{{ns.COMPONENT}}}presence"
IQ = f"{{{ns.COMPONENT}}}iq"
KINDS = {MESSAGE: "message", PRESENCE: "presence", IQ: "iq"}
_NSMAP = {None: ns.COMPONENT}
_ids = itertools.count(1)


def stamp(seconds: float) -> str:
    """An XEP-0082 DateTime in UTC, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def new_id(prefix: str = "nf") -> str:
    """A stanza id unique within this process."""
    return f"{prefix}{next(_ids)}"


@attrs.define(slots=True)
class Stanza:
    """A received stanza: its element and the parsed addresses."""

    element: etree._Element
    kind: str
    sender: JID
    recipient: JID

    @property
    def type(self) -> str | None:
        """The ``type`` attribute, or None."""
        return self.element.get("type")

    @property
    def id(self) -> str | None:
        """The ``id`` attribute, or None."""
        return self.element.get("id")

    def payload(self) -> etree._Element | None:
        """The first child element (for an iq: its query)."""
        for element in self.element:
            if isinstance(element.tag, str):
                return element
        return None

    def find(self, tag: str) -> etree._Element | None:
        """The first child with this qualified tag (``{namespace}name``)."""
        return self.element.find(tag)

    def keep(self) -> Stanza:
        """Make the stanza safe to use after its handler returns; returns it.

        A received element belongs to the stream until its handler returns,
        then the stream lets go of it, and lxml would serialise it with
        invented prefixes (``<ns0:message>``). Code that queues a stanza or
        awaits before using it calls this first, while the element is still
        in the stream: the copy serialises cleanly.
        """
        self.element = copy.deepcopy(self.element)
        return self


# Copying an empty element is about twice as fast as building one with its
# namespace map, and stanzas are built on every hot path.
_TEMPLATES = {tag: etree.Element(tag, nsmap=_NSMAP) for tag in (MESSAGE, PRESENCE, IQ)}


def _stanza(
    tag: str, sender: JID | str, recipient: JID | str, type: str | None, id: str | None
) -> etree._Element:
    element = copy.copy(_TEMPLATES[tag])
    element.set("from", str(sender))
    element.set("to", str(recipient))
    if type is not None:
        element.set("type", type)
    if id is not None:
        element.set("id", id)
    return element


def _filled(
    element: etree._Element, children: Iterable[tuple[str, str | None]], payload: Iterable[etree._Element]
) -> etree._Element:
    """``element`` with a child for each (name, text) whose text is not None, in order, then ``payload``."""
    for name, text in children:
        if text is not None:
            child(element, name, text)
    for item in payload:
        element.append(item)
    return element


#: Qualified tags of the stanza children built most (body, status, ...), made once.
_CHILD_TAGS: dict[str, str] = {}


def child(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    """Append a ``jabber:component:accept`` child such as ``body`` or ``status``."""
    tag = _CHILD_TAGS.get(name)
    if tag is None:
        tag = f"{{{ns.COMPONENT}}}{name}"
        if len(_CHILD_TAGS) < 64:
            _CHILD_TAGS[name] = tag
    element = etree.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def text_of(element: etree._Element, name: str, namespace: str = ns.COMPONENT) -> str | None:
    """The text of the first ``{namespace}name`` child ('' when empty, None when absent).

    ``namespace`` defaults to the stanza namespace (``body``, ``subject``...).
    """
    found = element.find(f"{{{namespace}}}{name}")
    if found is None:
        return None
    return found.text or ""


def message(
    sender: JID | str,
    recipient: JID | str,
    body: str | None = None,
    *,
    type: str | None = "chat",
    id: str | None = None,
    thread: str | None = None,
    subject: str | None = None,
    payload: Iterable[etree._Element] = (),
) -> etree._Element:
    """A ``<message/>`` element."""
    return _filled(_stanza(MESSAGE, sender, recipient, type, id), (("subject", subject), ("body", body), ("thread", thread)), payload)


def message_bytes(
    sender: JID | str,
    recipient: JID | str,
    body: str | None = None,
    *,
    type: str | None = "chat",
    id: str | None = None,
    thread: str | None = None,
    subject: str | None = None,
) -> bytes:
    """The ``<message/>`` :func:`message` makes, serialised as it is sent (see :func:`in_stream`), built as bytes.

    For entities that answer every message: no element is built, and
    nothing is serialised but the few strings of the stanza.
    """
    parts = [b'<message from="', _escape_attribute(str(sender)), b'" to="', _escape_attribute(str(recipient))]
    if type is not None:
        parts += (b'" type="', _escape_attribute(type))
    if id is not None:
        parts += (b'" id="', _escape_attribute(id))
    if subject is None and body is None and thread is None:
        parts.append(b'"/>')
        return b"".join(parts)
    parts.append(b'">')
    for name, text in ((b"subject", subject), (b"body", body), (b"thread", thread)):
        if text is not None:
            parts += (b"<", name, b">", _escape_text(text), b"</", name, b">")
    parts.append(b"</message>")
    return b"".join(parts)


def presence(
    sender: JID | str,
    recipient: JID | str,
    *,
    type: str | None = None,
    show: str | None = None,
    status: str | None = None,
    priority: int | None = None,
    id: str | None = None,
    payload: Iterable[etree._Element] = (),
) -> etree._Element:
    """A ``<presence/>`` element (available when ``type`` is None)."""
    children = (("show", show), ("status", status), ("priority", None if priority is None else str(priority)))
    return _filled(_stanza(PRESENCE, sender, recipient, type, id), children, payload)


def iq(
    sender: JID | str,
    recipient: JID | str,
    type: str,
    payload: etree._Element | None = None,
    *,
    id: str | None = None,
) -> etree._Element:
    """An ``<iq/>`` element; a request gets a fresh id when none is given."""
    element = _stanza(IQ, sender, recipient, type, id or new_id())
    if payload is not None:
        element.append(payload)
    return element


def result_reply(stanza: Stanza, payload: etree._Element | None = None) -> etree._Element:
    """The ``result`` answering an iq request, addressed back to its sender."""
    return iq(stanza.recipient, stanza.sender, "result", payload, id=stanza.id or "")


def error_reply(stanza: Stanza, error: StanzaError, *, payload: bool = True) -> etree._Element:
    """The error reply to ``stanza``: addresses swapped, id kept, original payload included.

    RFC 6120 §8.3.1 lets the reply carry the original XML, which helps the
    sender tell which request failed; ``payload=False`` leaves it out.
    """
    original = stanza.element
    reply = etree.Element(
        original.tag,
        {"from": str(stanza.recipient), "to": str(stanza.sender), "type": "error"},
        nsmap=_NSMAP,
    )
    stanza_id = original.get("id")
    if stanza_id is not None:
        reply.set("id", stanza_id)
    for item in original if payload else ():
        if isinstance(item.tag, str) and item.tag != f"{{{ns.COMPONENT}}}error":
            reply.append(copy.deepcopy(item))
    reply.append(error.to_element())
    return reply


# An address no one can guess, replaced by each recipient's after serialisation.
_MARK = f"nf-to-{secrets.token_hex(8)}"
_MARK_BYTES = _MARK.encode()
_TO = b' to="'


_ATTRIBUTE_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}
)


_NEEDS_ESCAPE = re.compile('[&<>"\t\n\r]')


# As libxml2 writes text: a carriage return would otherwise be read back as a line feed.
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_TEXT_NEEDS_ESCAPE = re.compile("[&<>\r]")


def _escape_text(value: str) -> bytes:
    if _TEXT_NEEDS_ESCAPE.search(value) is None:
        return value.encode()
    return value.translate(_TEXT_ESCAPES).encode()


def _escape_attribute(value: str) -> bytes:
    # Most addresses and ids need no escaping; the search is five times
    # cheaper than the translation.
    if _NEEDS_ESCAPE.search(value) is None:
        return value.encode()
    return value.translate(_ATTRIBUTE_ESCAPES).encode()


def result_reply_bytes(stanza: Stanza, payload: bytes) -> bytes:
    """The serialised ``result`` answering ``stanza``, around an already serialised payload.

    Entities whose answer never changes (a static disco#info) serialise it
    once and reuse the bytes.
    """
    return b"".join(
        (
            b'<iq xmlns="jabber:component:accept" from="',
            _escape_attribute(str(stanza.recipient)),
            b'" to="',
            _escape_attribute(str(stanza.sender)),
            b'" type="result" id="',
            _escape_attribute(stanza.element.get("id") or ""),
            b'">',
            payload,
            b"</iq>",
        )
    )


def _tag_name(element: etree._Element) -> bytes:
    prefix = element.prefix
    local = etree.QName(element).localname
    return (f"{prefix}:{local}" if prefix else local).encode()


_STREAM_DECLARATION = f' xmlns:stream="{ns.STREAMS}"'.encode()
#: The stream header declares the stanzas' namespace as its default: a stanza need not repeat it.
_STANZA_DECLARATION = f' xmlns="{ns.COMPONENT}"'.encode()
# Both, as lxml writes them on an element received in the stream.
_BOTH_DECLARATIONS = _STANZA_DECLARATION + _STREAM_DECLARATION


def in_stream(data: bytes) -> bytes:
    """A serialised stanza without the declaration of ``jabber:component:accept``, which the stream makes.

    lxml declares an element's namespaces right after its name, and the
    stanza's children in the same namespace inherit the default, so the
    stanza means the same inside the stream without it: what the server
    parses and routes is 32 bytes shorter, every stanza.
    """
    name_end = data.find(b" ")
    if name_end > 0 and data.startswith(_STANZA_DECLARATION, name_end):
        # Nothing before the name's end can hold it: the first occurrence is
        # this one, and one replace copies the stanza once, not twice.
        return data.replace(_STANZA_DECLARATION, b"", 1)
    return data


def parse_sent(data: bytes, parser: etree.XMLParser | None = None) -> etree._Element:
    """Parse one stanza as it is sent (see :func:`in_stream`) into an element of ``jabber:component:accept``."""
    name_end = data.find(b" ")
    if name_end > 0 and not data.startswith(_STANZA_DECLARATION, name_end):
        data = data[:name_end] + _STANZA_DECLARATION + data[name_end:]
    return etree.fromstring(data, parser)


_ADDRESSES = f'<addresses xmlns="{ns.ADDRESS}"><address type="bcc" jid="'.encode()
_ADDRESSES_END = b'"/></addresses>'
_SLASH = ord("/")


class Broadcast:
    """One stanza serialised once, then addressed to many recipients.

    A room reflects the same message to every occupant with only ``to``
    changing; serialising it once and splicing each address in costs a
    fraction of one ``tostring`` per recipient.
    """

    __slots__ = ("_head", "_tail")

    def __init__(self, element: etree._Element, last_child: bytes = b"", *, restore: bool = True) -> None:
        """Serialise ``element``; ``last_child``, already serialised, is added as its last child.

        Adding a child as bytes (a room's stanza-id) spares moving an element
        into the stanza's document, which costs more than the serialisation.
        An element with a ``to`` is serialised as it is and left untouched;
        one without gets a placeholder ``to`` for the serialisation, which
        ``restore=False`` leaves in place, for a caller that is done with it.
        """
        if element.get("to") is not None:
            # UTF-8: in ASCII a non-ASCII name would become a character reference.
            data = etree.tostring(element, encoding="utf-8")
            # The start tag's attributes come before anything else in the
            # serialisation, and a value holds no '"' (it is escaped): the first
            # ' to="' is the stanza's own, and the next '"' ends it. The address
            # is cut out where it stands, so the attributes keep their order.
            start = data.find(_TO) + len(_TO)
            head, tail = data[:start], data[data.index(b'"', start):]
        else:
            element.set("to", _MARK)
            try:
                data = etree.tostring(element, encoding="utf-8")
            finally:
                if restore:
                    del element.attrib["to"]
            head, _, tail = data.partition(_MARK_BYTES)
        # bytes.find, not ``in``: ``in`` first tries its operand as an integer,
        # and the TypeError it raises and clears costs more than the search.
        if head.find(b"stream:") < 0 and tail.find(b"stream:") < 0:
            # A received element still in the stream carries the stream's prefix
            # declaration as well as its default namespace: unused and already in
            # scope, they would only add bytes to every copy.
            name_end = head.find(b" ")
            if head.startswith(_BOTH_DECLARATIONS, name_end):
                head = head[:name_end] + head[name_end + len(_BOTH_DECLARATIONS) :]
            else:
                head = in_stream(head.replace(_STREAM_DECLARATION, b"", 1))
        else:
            head = in_stream(head)
        if last_child:
            if tail.endswith(b"/>"):
                tail = tail[:-2] + b">" + last_child + b"</" + _tag_name(element) + b">"
            else:
                close = tail.rindex(b"</")
                tail = tail[:close] + last_child + tail[close:]
        self._head = head
        self._tail = tail

    def to(self, recipient: JID | str) -> bytes:
        """The serialised stanza addressed to ``recipient``."""
        return self._head + _escape_attribute(str(recipient)) + self._tail

    def untargeted(self) -> bytes:
        """The serialised stanza without ``to``, as an archive keeps it."""
        return self._head.removesuffix(b' to="') + self._tail[1:]

    @property
    def size(self) -> int:
        """The serialised length without the recipient's address."""
        return len(self._head) + len(self._tail)

    @property
    def kind(self) -> str:
        """The stanza's name: message, presence or iq."""
        return self._head[1 : self._head.find(b" ")].decode()

    def via(self, service: bytes, recipients: Sequence[bytes]) -> bytes:
        """One stanza to a multicast service (XEP-0033, an :func:`address`) for ``recipients``, each a ``bcc`` address.

        The service sends each recipient a copy addressed to it and without
        the addresses, the stanza :meth:`to` would have built. The addresses
        are the first child: a service reads the first ``<addresses/>``.
        """
        block = b"".join((_ADDRESSES, b'"/><address type="bcc" jid="'.join(recipients), _ADDRESSES_END))
        head, tail = self._head, self._tail
        # The start tag ends at the first '>': attribute values have theirs escaped.
        end = tail.index(b">")
        if tail[end - 1] == _SLASH:
            return b"".join((head, service, tail[: end - 1], b">", block, b"</", head[1 : head.find(b" ")], b">"))
        return b"".join((head, service, tail[: end + 1], block, tail[end + 1 :]))

    def to_address(self, recipient: bytes) -> bytes:
        """The serialised stanza addressed to an :func:`address` computed once beforehand."""
        return self._head + recipient + self._tail

    def to_all(self, recipients: Sequence[bytes]) -> bytes:
        """The stanza addressed to each of ``recipients`` (from :func:`address`), one after the other.

        One ``join`` for the whole fan-out: a room of thousands costs one
        allocation and one write instead of thousands.
        """
        if not recipients:
            return b""
        return _spliced(self._head, self._tail + self._head, self._tail, recipients)

    def to_each(self, recipients: Sequence[bytes]) -> bytes | Fanout:
        """The stanza addressed to each of ``recipients``: built now when small, else a :class:`Fanout`.

        A fan-out to thousands is built as the link drains, so that it never
        sits in memory whole; the recipients are the ones given now, even if
        the list grows later.
        """
        if len(recipients) * (len(self._head) + len(self._tail) + 64) <= EAGER_BYTES:
            return self.to_all(recipients)
        return Fanout(self._head, self._tail, tuple(recipients))


def _spliced(head: bytes, between: bytes, tail: bytes, recipients: Sequence[bytes]) -> bytes:
    """``head + between.join(recipients) + tail``, in one copy of the whole.

    The first and the last address take the head and the tail, which are
    short: concatenated to the joined result, they would copy all of it twice.
    """
    if len(recipients) == 1:
        return head + recipients[0] + tail
    parts = list(recipients)
    parts[0] = head + parts[0]
    parts[-1] += tail
    return between.join(parts)


class Fanout:
    """One stanza to many recipients, built a chunk of whole stanzas at a time (an ``output.Lazy``)."""

    __slots__ = ("_head", "_join", "_next", "_recipients", "_tail", "size", "stanzas", "start")

    def __init__(self, head: bytes, tail: bytes, recipients: tuple[bytes, ...]) -> None:
        self._head = self.start = head
        self._tail = tail
        self._join = tail + head
        self._recipients = recipients
        self._next = 0
        self.stanzas = len(recipients)
        self.size = self.stanzas * (len(head) + len(tail)) + sum(map(len, recipients))

    def take(self, budget: int) -> bytes:
        """The next stanzas, about ``budget`` bytes of them and at least one."""
        start = self._next
        end = min(start + max(1, budget * self.stanzas // max(self.size, 1)), len(self._recipients))
        data = _spliced(self._head, self._join, self._tail, self._recipients[start:end])
        self._next = end
        self.stanzas -= end - start
        self.size -= len(data)
        return data


class Spliced:
    """Many stanzas to one recipient, kept serialised with a gap where the address goes (an ``output.Lazy``).

    ``gap.join(segments)`` is the whole output: the first segment is a
    stanza's start up to its ``to``, the last one a stanza's rest after it,
    and each segment between holds the rest of one stanza and the start of
    the next. A stanza's start up to ``to`` holds one ``<``, its first byte
    (attribute values escape it), so a chunk ends at the segment's last ``<``.
    """

    __slots__ = ("_carry", "_gap", "_next", "_segments", "size", "stanzas", "start")

    def __init__(self, segments: Sequence[bytes], gap: bytes, size: int) -> None:
        """``size`` is the length of ``gap.join(segments)``."""
        self._segments = segments
        self._gap = gap
        self._carry = self.start = segments[0]
        self._next = 1
        self.stanzas = len(segments) - 1
        self.size = size

    def take(self, budget: int) -> bytes:
        """The next stanzas, about ``budget`` bytes of them and at least one."""
        start = self._next
        last = len(self._segments) - 1
        end = min(start + max(1, budget * self.stanzas // max(self.size, 1)), last + 1)
        parts = list(self._segments[start:end])
        carry = self._carry
        if end <= last:
            # The next stanza starts inside this segment: keep its start for the next chunk.
            cut = parts[-1].rindex(b"<")
            self._carry = parts[-1][cut:]
            parts[-1] = parts[-1][:cut]
        parts.insert(0, carry)
        data = self._gap.join(parts)
        self._next = end
        self.stanzas -= end - start
        self.size -= len(data)
        return data


def splice(segments: list[bytes], gap: bytes) -> bytes | Spliced:
    """``gap.join(segments)`` (see :class:`Spliced`), built now when small.

    ``segments`` may grow later (a room appends its newcomers); only the
    stanzas it holds now are sent.
    """
    size = sum(map(len, segments)) + len(gap) * (len(segments) - 1)
    if size <= EAGER_BYTES:
        return gap.join(segments)
    return Spliced(tuple(segments), gap, size)


def address(recipient: JID | str) -> bytes:
    """A recipient's address escaped for a ``to`` attribute, to keep and reuse with a :class:`Broadcast`."""
    return _escape_attribute(str(recipient))
