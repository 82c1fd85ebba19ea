"""The incremental XML stream: bytes in, one stanza element at a time out.

Built on lxml's pull parser. Each top-level element is handed over when its
end tag arrives and then detached from the stream root, so memory stays flat
however long the stream lives. The restrictions of RFC 6120 §11.1 apply: no
DTD, no entity other than the predefined ones, no comments, no processing
instructions; and, by §11.3, the stream must be namespace-well-formed, so a
name with an undeclared prefix ends it (lxml would keep the name, and the
component would send it on to a server that refuses it). Stanza size and
nesting depth are bounded.

A stanza over the size or depth limit is refused on its own: the parser
keeps reading it while dropping what it completes, and hands over its
start tag (its addresses, type and id, without children) to ``on_refused``
when it ends; the stream goes on. Only input that cannot be parsed any
further ends the stream.

lxml reports no byte offsets, so sizes are counted per slice fed to it, and
counted low rather than high: a stanza is refused once the bytes known to be
its own pass the limit, and no stanza within the limit is ever refused. The
bytes of a read it shares with the stanzas before it may go uncounted, so
what one stanza holds stays under the limit plus one slice. Separately, no
more than twice the limit may arrive without the parser completing a tag or
handing over text, which bounds what lxml buffers for a tag, comment or
reference left open: a tag cannot be skipped before it is complete, so such
input ends the stream.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal, cast
from xml.sax.saxutils import quoteattr

import attrs
from lxml import etree

from component import namespaces as ns
from component.errors import StreamError
from component.options import setting

__all__ = ["StreamLimits", "StreamParser"]
# lxml builds what it is fed before we see the events; feeding in slices keeps
# what an oversized stanza can allocate before it is refused to one slice.
# A slice is never larger than the stanza limit, so a stanza that starts and
# ends within one slice is within the limit.
_SLICE = 64 * 1024
_STREAM_TAG = f"{{{ns.STREAMS}}}stream"
# A "<" that opens an element, not a declaration, comment or instruction.
_ELEMENT_OPEN = re.compile(rb"<[^!?]")
# A whole start tag, from its "<": attribute values may hold ">".
_START_TAG = re.compile(rb"""<(?:[^>"']|"[^"]*"|'[^']*')*>""")
_ENTITY_ERRORS = frozenset({"ERR_UNDECLARED_ENTITY", "WAR_UNDECLARED_ENTITY", "ERR_ENTITY_PE_INTERNAL"})


@attrs.frozen(slots=False)  # a second base of ComponentConfig beside the slotted DomainSettings
class StreamLimits:
    """What one incoming stanza may hold; settings of a component domain, inherited by its ComponentConfig."""

    # Prosody re-escapes what clients send (a '"' in text arrives as "&quot;"),
    # so a stanza inside its client limit of 256 KiB can reach a component six
    # times larger: the default takes in anything Prosody lets a client send.
    max_stanza_bytes: int = setting(
        2 * 1024 * 1024,
        "bytes of an incoming stanza; a bigger one gets policy-violation and the stream goes on",
        minimum=1024,
    )
    max_depth: int = setting(32, "nesting depth of an incoming stanza, refused past it like a big one", minimum=4)


class StreamParser:
    """Parses one XML stream; create a new one for every connection.

    ``on_header`` gets the ``<stream:stream>`` element once it opens,
    ``on_element`` each complete top-level element (stanzas, ``handshake``,
    ``stream:error``), ``on_refused`` each one over the size or depth limit
    of ``limits`` (its start tag only) with the reason, ``on_close`` the end
    of the stream. :meth:`feed` raises :class:`StreamError` on input that must end
    the stream.
    """

    def __init__(
        self,
        on_header: Callable[[etree._Element], None],
        on_element: Callable[[etree._Element], None],
        on_close: Callable[[], None],
        *,
        on_refused: Callable[[etree._Element, str], None],
        limits: StreamLimits = StreamLimits(),
    ) -> None:
        self._on_header = on_header
        self._on_element = on_element
        self._on_refused = on_refused
        self._on_close = on_close
        self.max_stanza_bytes = limits.max_stanza_bytes
        self.max_depth = limits.max_depth
        self._slice = max(1, min(_SLICE, limits.max_stanza_bytes))
        self._parser = _pull_parser(("start", "end", "comment", "pi"))
        # The server's header is read by a parser of its own: the stream's
        # parser gets a header of our making instead (see _opened).
        self._header_parser: etree.XMLPullParser | None = _pull_parser(("start", "comment", "pi"))
        self._head = b""  # the stream so far, until its header is complete
        self._root: etree._Element | None = None
        self._depth = 0
        self._stanza_bytes = 0  # bytes known to belong to the stanza in progress
        self._stalled_bytes = 0  # bytes fed since the parser last showed progress
        self._closed = False
        self._prolog_tail = b""
        self._root_tag_seen = False
        self._log_seen = 0  # entries of lxml's log already looked at
        self._check_names = False
        self._refusing: str | None = None  # why the stanza in progress is refused

    def feed(self, data: bytes) -> None:
        """Parse more of the stream; dispatches every element it completes."""
        step = self._slice
        if len(data) <= step:
            self._feed_slice(data)
            return
        for start in range(0, len(data), step):
            self._feed_slice(data[start : start + step])

    def _feed_slice(self, data: bytes) -> None:
        if self._closed:
            return
        if self._root is None:
            data = self._read_header(data)
            if not data:
                return
        depth_before = self._depth
        # What of the stanza (or of its start tag) came before this slice.
        carried = self._stanza_bytes if depth_before > 1 else self._stalled_bytes
        try:
            self._parser.feed(data)
        except etree.XMLSyntaxError as exc:
            raise _syntax_error(exc) from None
        self._check_log()
        try:
            progressed, completed = self._dispatch_events(data, carried)
        except etree.XMLSyntaxError as exc:
            raise _syntax_error(exc) from None
        if self._refusing is not None:
            progressed = self._prune() or progressed
        if completed:
            # Whatever follows the last stanza began somewhere in this slice.
            self._stanza_bytes = self._stalled_bytes = 0
        elif not self._closed:
            self._count(data, progressed, depth_before, carried)
            if self._refusing is not None:
                self._prune()
        if self._depth <= 1 and self._root is not None and self._root.text:
            # Whitespace keepalives between stanzas accumulate as root text.
            self._root.text = None

    def _read_header(self, data: bytes) -> bytes:
        """Read the stream header; once it is complete, what of ``data`` follows it."""
        assert self._header_parser is not None
        self._check_prolog(data)
        self._head += data
        try:
            self._header_parser.feed(data)
        except etree.XMLSyntaxError as exc:
            raise _syntax_error(exc) from None
        for entry in self._header_parser.feed_error_log:
            if entry.type_name.startswith("NS_ERR"):
                raise StreamError("not-well-formed", entry.message)
        for event, element in self._header_parser.read_events():
            if event != "start":
                raise StreamError("restricted-xml", "comments and processing instructions are not allowed")
            return self._opened(element)
        if len(self._head) > 2 * self.max_stanza_bytes:
            raise StreamError("policy-violation", f"no stream header in {2 * self.max_stanza_bytes} bytes")
        return b""

    def _opened(self, header: etree._Element) -> bytes:
        """Check the server's header, then start the stream's parser on a header of our own.

        Ours declares the stream's namespaces and nothing else: lxml writes
        every declaration in scope into each stanza it serialises, so one the
        server added would be copied into everything a room reflects.
        """
        if header.tag != _STREAM_TAG:
            if etree.QName(header).localname == "stream":
                raise StreamError("invalid-namespace", "the stream element is not in the streams namespace")
            raise StreamError("not-well-formed", "the stream does not start with <stream:stream>")
        opening = _ELEMENT_OPEN.search(self._head)
        assert opening is not None
        tag = _START_TAG.match(self._head, opening.start())
        assert tag is not None, "lxml reported a start tag that is not in the bytes"
        rest = self._head[tag.end() :]
        self._head = b""
        self._header_parser = None
        prefix = header.prefix
        name = f"{prefix}:stream" if prefix else "stream"
        declarations = f"xmlns:{prefix}={quoteattr(ns.STREAMS)}" if prefix else ""
        default = header.nsmap.get(None)
        if default is not None:
            declarations += f" xmlns={quoteattr(default)}"
        if tag.group().endswith(b"/>"):
            rest = f"</{name}>".encode() + rest
        self._on_header(header)
        self._parser.feed(f"<{name} {declarations}>".encode())
        for _, root in self._parser.read_events():
            self._root = root
        self._depth = 1
        return rest

    def _check_log(self) -> None:
        # lxml records breaches of the namespace rules and goes on parsing.
        log = self._parser.feed_error_log
        if len(log) == self._log_seen:
            return
        entries = list(log)[self._log_seen :]
        self._log_seen = len(log)
        for entry in entries:
            if entry.type_name.startswith("NS_ERR"):
                raise StreamError("not-well-formed", entry.message)
        # What is let through (a namespace name that is not a URI) fills the
        # log, and libxml2 stops recording after a hundred entries: from now
        # on each stanza's names are checked here.
        self._check_names = True

    def _check_prolog(self, data: bytes) -> None:
        # Before the stream's start tag, "<!" can only start a DTD or a
        # comment: refuse both before lxml reads any declaration. From the
        # start tag on, "<!" is a CDATA section (or a comment lxml reports).
        prolog = self._prolog_tail + data
        opening = _ELEMENT_OPEN.search(prolog)
        if prolog.find(b"<!", 0, opening.start() if opening else len(prolog)) >= 0:
            raise StreamError("restricted-xml", "a DTD is not allowed")
        self._root_tag_seen = opening is not None
        self._prolog_tail = data[-1:]

    def _count(self, data: bytes, progressed: bool, depth_before: int, carried: int) -> None:
        """Count a slice that completed no stanza; refuse what grew past the limit."""
        if progressed or self._read_as_text(data):
            self._stalled_bytes = 0
        else:
            self._stalled_bytes += len(data)
        if self._stalled_bytes > 2 * self.max_stanza_bytes:
            raise StreamError("policy-violation", f"no complete tag in {2 * self.max_stanza_bytes} bytes")
        if self._depth <= 1:
            return
        if depth_before > 1:
            self._stanza_bytes += len(data)
        elif carried:
            self._stanza_bytes = carried + len(data)
        else:
            self._stanza_bytes = len(data) - max(data.find(b"<"), 0)
        if self._stanza_bytes > self.max_stanza_bytes and self._refusing is None:
            self._refusing = _too_large(self.max_stanza_bytes)

    def _read_as_text(self, data: bytes) -> bool:
        # Whitespace between stanzas comes out at once as the root's text
        # (cleared after every slice); inside an unfinished tag or comment
        # it would not. Without "<" or "&" a slice cannot leave text for markup.
        root = self._root
        return (
            self._depth <= 1 and root is not None and bool(root.text) and b"<" not in data and b"&" not in data
        )

    def _dispatch_events(self, data: bytes, carried: int) -> tuple[bool, bool]:
        """Handle the events of one slice: whether there were any, and whether one completed a stanza."""
        progressed = completed = False
        tags = 0  # tags this slice completed, at the least: "<a/>" gives two events, as may "<a></a>"
        opened: etree._Element | None = None
        for event, element in self._parser.read_events():
            progressed = True
            if event == "start":
                tags += 1
                opened = element
                self._depth += 1
                if self._depth == 2 and element.tag == _STREAM_TAG:
                    # A stream restart inside the stream would swallow every
                    # stanza after it as its children.
                    raise StreamError("bad-format", "a second stream header inside the stream")
                elif self._depth > self.max_depth + 1 and self._refusing is None:
                    self._refusing = f"stanza nested deeper than {self.max_depth}"
            elif event == "end":
                if element is not opened or (opened is not None and opened.text):
                    tags += 1
                self._depth -= 1
                if self._depth == 1:
                    if carried and not completed and carried + _end_of_tag(data, tags) > self.max_stanza_bytes:
                        self._refusing = self._refusing or _too_large(self.max_stanza_bytes)
                    completed = True
                    self._hand_over(element)
                elif self._depth == 0:
                    self._closed = True
                    self._on_close()
                    return progressed, True
            else:
                raise StreamError("restricted-xml", "comments and processing instructions are not allowed")
        return progressed, completed

    def _hand_over(self, element: etree._Element) -> None:
        """Dispatch a completed top-level element, or its start tag if it is refused."""
        reason, self._refusing = self._refusing, None
        if reason is None and self._check_names and _breaks_namespaces(element):
            raise StreamError("not-well-formed", "the stanza is not namespace-well-formed")
        # Dispatch while still attached (it serialises without invented
        # prefixes), then detach to keep memory flat.
        element.tail = None
        try:
            if reason is None:
                self._on_element(element)
            else:
                _empty(element)
                self._on_refused(element, reason)
        finally:
            root = self._root
            assert root is not None
            root.remove(element)

    def _prune(self) -> bool:
        """Drop what the refused stanza in progress has completed; whether any text went.

        Only the open elements stay (at most the depth of the stanza), and
        none keeps any text, so the parser's next text starts a new node.
        """
        assert self._root is not None
        dropped = False
        node = self._root[-1]  # the stanza in progress: completed ones are detached
        for level in range(self._depth - 1, 0, -1):
            dropped = _empty(node, keep_last=level > 1) or dropped
            if level > 1:
                node = node[-1]  # the open child: whatever comes after it is not parsed yet
        return dropped


def _pull_parser(events: tuple[Literal["start", "end", "comment", "pi"], ...]) -> etree.XMLPullParser:
    return etree.XMLPullParser(
        events=events,
        # No DTD ever reaches the parser (see _check_prolog), so the only
        # entities left are undeclared ones, which lxml then reports.
        resolve_entities="internal",
        load_dtd=False,
        no_network=True,
        huge_tree=False,
        remove_blank_text=False,
        encoding="utf-8",
    )


def _breaks_namespaces(stanza: etree._Element) -> bool:
    """Whether lxml kept a "prefix:name" it found no namespace for, or one attribute twice
    (under two prefixes of one namespace): what would make the stanza unsendable."""
    for element in stanza.iter():
        if ":" in cast(str, element.tag).rpartition("}")[2]:
            return True
        names = element.keys()
        if len(set(names)) != len(names):
            return True
        for name in names:
            if ":" in name.rpartition("}")[2]:
                return True
    return False


def _end_of_tag(data: bytes, count: int) -> int:
    """Where the ``count``-th tag of ``data`` ends, at the earliest: just past its ``count``-th ">"."""
    end = -1
    for _ in range(count):
        found = data.find(b">", end + 1)
        if found < 0:
            break
        end = found
    return end + 1


def _empty(element: etree._Element, *, keep_last: bool = False) -> bool:
    """Remove ``element``'s text and children (but its last, with ``keep_last``); whether it had text."""
    had_text = bool(element.text)
    element.text = None
    children = list(element)
    if keep_last:
        children = children[:-1]
    for child in children:
        had_text = had_text or bool(child.tail)
        element.remove(child)
    return had_text


def _too_large(limit: int) -> str:
    return f"stanza larger than {limit} bytes"


def _syntax_error(exc: etree.XMLSyntaxError) -> StreamError:
    # The exception's own message is its log's first entry, which may be a
    # warning the stream was let through with long before. The error that
    # stopped the parser is the last fatal one: libxml2 may still add a
    # warning after it (a namespace name it had to repair).
    entry = exc.error_log.last_error if exc.error_log else None
    if entry is not None and entry.level_name != "FATAL":
        entry = exc.error_log.filter_from_fatals().last_error or entry
    type_name = entry.type_name if entry is not None else ""
    message = (entry.message if entry is not None else "") or exc.msg or str(exc)
    if type_name in _ENTITY_ERRORS or "Entity" in message:
        return StreamError("restricted-xml", "entity references other than the predefined ones are not allowed")
    if type_name == "ERR_INVALID_ENCODING":
        # RFC 6120 §4.9.3.22: a stream that breaks the rules of UTF-8.
        return StreamError("unsupported-encoding", "the stream is not valid UTF-8")
    if "Excessive depth" in message:
        return StreamError("policy-violation", "stanza nested too deeply")
    if type_name == "ERR_RESOURCE_LIMIT" or "huge" in message.lower():
        return StreamError("policy-violation", message.splitlines()[0])
    return StreamError("not-well-formed", message.splitlines()[0] if message else None)
