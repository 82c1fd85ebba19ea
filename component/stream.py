"""The incremental XML stream: bytes in, one stanza element at a time out.

Built on lxml's pull parser. Each top-level element is handed over when its
end tag arrives and then detached from the stream root, so memory stays flat
however long the stream lives. The restrictions of RFC 6120 §11.1 apply: no
DTD, no entity other than the predefined ones, no comments, no processing
instructions; and, by §11.3, the stream must be namespace-well-formed, so a
name with an undeclared prefix ends it (lxml would keep the name, and the
component would send it on to a server that refuses it). Stanza size and
nesting depth are bounded.

lxml reports no byte offsets, so sizes are counted per slice fed to it, and
counted low rather than high: a stanza is refused once the bytes known to be
its own pass the limit, and no stanza within the limit is ever refused. The
bytes of a read it shares with the stanzas before it may go uncounted, so
what one stanza holds stays under the limit plus one slice. Separately, no
more than the limit may arrive without the parser completing a tag or
handing over text, which bounds what lxml buffers for a tag, comment or
reference left open.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from lxml import etree

from component import namespaces as ns
from component.errors import StreamError

__all__ = ["StreamParser", "DEFAULT_MAX_STANZA_BYTES", "DEFAULT_MAX_DEPTH"]

DEFAULT_MAX_STANZA_BYTES = 512 * 1024
DEFAULT_MAX_DEPTH = 32
# lxml builds what it is fed before we see the events; feeding in slices keeps
# what an oversized stanza can allocate before it is refused to one slice.
# A slice is never larger than the stanza limit, so a stanza that starts and
# ends within one slice is within the limit.
_SLICE = 64 * 1024
_STREAM_TAG = f"{{{ns.STREAMS}}}stream"
# A "<" that opens an element, not a declaration, comment or instruction.
_ELEMENT_OPEN = re.compile(rb"<[^!?]")
_ENTITY_ERRORS = frozenset({"ERR_UNDECLARED_ENTITY", "WAR_UNDECLARED_ENTITY", "ERR_ENTITY_PE_INTERNAL"})


class StreamParser:
    """Parses one XML stream; create a new one for every connection.

    ``on_header`` gets the ``<stream:stream>`` element once it opens,
    ``on_element`` each complete top-level element (stanzas, ``handshake``,
    ``stream:error``), ``on_close`` the end of the stream. :meth:`feed`
    raises :class:`StreamError` on input that must end the stream.
    """

    def __init__(
        self,
        on_header: Callable[[etree._Element], None],
        on_element: Callable[[etree._Element], None],
        on_close: Callable[[], None],
        *,
        max_stanza_bytes: int = DEFAULT_MAX_STANZA_BYTES,
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        self._on_header = on_header
        self._on_element = on_element
        self._on_close = on_close
        self.max_stanza_bytes = max_stanza_bytes
        self.max_depth = max_depth
        self._slice = max(1, min(_SLICE, max_stanza_bytes))
        self._parser = etree.XMLPullParser(
            events=("start", "end", "comment", "pi"),
            # No DTD ever reaches the parser (see _check_prolog), so the only
            # entities left are undeclared ones, which lxml then reports.
            resolve_entities="internal",
            load_dtd=False,
            no_network=True,
            huge_tree=False,
            remove_blank_text=False,
            encoding="utf-8",
        )
        self._root: etree._Element | None = None
        self._depth = 0
        self._stanza_bytes = 0  # bytes known to belong to the stanza in progress
        self._stalled_bytes = 0  # bytes fed since the parser last showed progress
        self._closed = False
        self._prolog_tail = b""
        self._root_tag_seen = False
        self._log_seen = 0  # entries of lxml's log already looked at
        self._check_names = False

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
        if not self._root_tag_seen:
            self._check_prolog(data)
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
        if completed:
            # Whatever follows the last stanza began somewhere in this slice.
            self._stanza_bytes = self._stalled_bytes = 0
        elif not self._closed:
            self._count(data, progressed, depth_before, carried)
        if self._depth <= 1 and self._root is not None and self._root.text:
            # Whitespace keepalives between stanzas accumulate as root text.
            self._root.text = None

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
        if self._stalled_bytes > self.max_stanza_bytes:
            raise StreamError("policy-violation", f"no complete tag in {self.max_stanza_bytes} bytes")
        if self._depth <= 1:
            return
        if depth_before > 1:
            self._stanza_bytes += len(data)
        elif carried:
            self._stanza_bytes = carried + len(data)
        else:
            self._stanza_bytes = len(data) - max(data.find(b"<"), 0)
        if self._stanza_bytes > self.max_stanza_bytes:
            raise _too_large(self.max_stanza_bytes)

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
                if self._depth == 1:
                    completed = True
                    self._open(element)
                elif self._depth > self.max_depth + 1:
                    raise StreamError("policy-violation", f"stanza nested deeper than {self.max_depth}")
            elif event == "end":
                if element is not opened or (opened is not None and opened.text):
                    tags += 1
                self._depth -= 1
                if self._depth == 1:
                    if carried and not completed and carried + _end_of_tag(data, tags) > self.max_stanza_bytes:
                        raise _too_large(self.max_stanza_bytes)
                    completed = True
                    if self._check_names and _breaks_namespaces(element):
                        raise StreamError("not-well-formed", "the stanza is not namespace-well-formed")
                    # Dispatch while still attached (it serialises without
                    # invented prefixes), then detach to keep memory flat.
                    element.tail = None
                    try:
                        self._on_element(element)
                    finally:
                        root = self._root
                        assert root is not None
                        root.remove(element)
                elif self._depth == 0:
                    self._closed = True
                    self._on_close()
                    return progressed, True
            else:
                raise StreamError("restricted-xml", "comments and processing instructions are not allowed")
        return progressed, completed

    def _open(self, root: etree._Element) -> None:
        if root.tag != _STREAM_TAG:
            qname = etree.QName(root)
            if qname.localname == "stream":
                raise StreamError("invalid-namespace", "the stream element is not in the streams namespace")
            raise StreamError("not-well-formed", "the stream does not start with <stream:stream>")
        self._root = root
        self._on_header(root)


def _breaks_namespaces(stanza: etree._Element) -> bool:
    """Whether lxml kept a "prefix:name" it found no namespace for, or one attribute twice
    (under two prefixes of one namespace): what would make the stanza unsendable."""
    for element in stanza.iter():
        if ":" in element.tag.rpartition("}")[2]:
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


def _too_large(limit: int) -> StreamError:
    return StreamError("policy-violation", f"stanza larger than {limit} bytes")


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
