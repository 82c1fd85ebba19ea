"""Extended stanza addressing (XEP-0033): one stanza to the server's multicast service for many recipients.

A room that reflects a message to twenty occupants sends the server twenty
stanzas, and the server parses and routes every one as if it came alone:
behind ejabberd, most of what our MUC costs the server. A multicast service
(ejabberd's ``mod_multicast``) takes one stanza whose ``<addresses/>`` name
the recipients and sends each a copy addressed to it. With every recipient a
``bcc`` address, the copies carry no addresses at all: each recipient gets
what the component would have sent it.

The operator names the service (``multicast``). It is asked for its
disco#info each time the link comes up, and used only once it has answered
with XEP-0033's feature; until then, and if it never does, every recipient
gets a stanza of its own. How many addresses one stanza may carry is what the
service advertises (XEP-0128 fields ``message`` and ``presence`` in a form of
type ``http://jabber.org/protocol/address``, as ejabberd gives custom limits),
else ``multicast_limit``; a stanza also stays within ``max_outgoing_bytes``.

A recipient's copy takes another path through the server than a stanza sent
to it straight (through the service), so one sent straight afterwards, such as
an occupant's own presence, may reach it first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lxml import etree
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from component import namespaces as ns
from component.jid import JID, parse_jid
from component.output import Piece
from component.stanza import Broadcast, address, iq

__all__ = ["Multicast"]

log = Logger()

#: Bytes an address adds to the stanza besides the JID: ``<address type="bcc" jid=""/>``.
_PER_ADDRESS = 28
#: The ``<addresses>`` element's own tags, with room for the stanza's new end tag.
_ENVELOPE = 80

#: What may carry ``<addresses/>`` (never an iq).
_KINDS = frozenset({"message", "presence"})
_TEXT = f"{{{ns.STANZAS}}}text"

Request = Callable[[etree._Element], "defer.Deferred[Any]"]


class Multicast:
    """The server's multicast service as one component domain uses it; ready once it answered on this link."""

    def __init__(self, service: str, limit: int, max_bytes: int) -> None:
        self.service = service
        self.jid = parse_jid(service)
        self._address = address(service)
        self._default_limit = limit
        self.max_bytes = max_bytes
        #: Most addresses in one stanza, by stanza kind (None: no number, only bytes bound it).
        self.limits: dict[str, int | None] = {}
        #: Whether the service said, on the current link, that it does XEP-0033.
        self.ready = False
        #: Stanzas sent to the service, and the recipients they reached.
        self.stanzas = 0
        self.recipients = 0
        self._asked = 0

    def check(self, sender: JID, request: Request) -> defer.Deferred[None]:
        """Ask the service what it is (a new link): it is used from its answer on, if that is XEP-0033."""
        self.ready = False
        self._asked += 1
        asked = self._asked
        query = etree.Element(f"{{{ns.DISCO_INFO}}}query", nsmap={None: ns.DISCO_INFO})
        deferred = request(iq(sender, self.service, "get", query))

        def answered(result: etree._Element) -> None:
            if asked != self._asked:
                return  # a later link asked again
            info = result.find(f"{{{ns.DISCO_INFO}}}query")
            features = {feature.get("var") for feature in info.iterfind(f"{{{ns.DISCO_INFO}}}feature")} if info is not None else set()
            if info is None or ns.ADDRESS not in features:
                log.warn(
                    "{domain}: {service} does not say it is a multicast service (XEP-0033); every recipient gets a stanza of its own",
                    domain=str(sender), service=self.service,
                )
                return
            self.limits = _advertised_limits(info)
            self.ready = True
            log.info(
                "{domain}: fanning out through the multicast service {service}", domain=str(sender), service=self.service
            )

        def failed(failure: Failure) -> None:
            if asked == self._asked:
                log.warn(
                    "{domain}: the multicast service {service} did not answer disco#info ({why}); every recipient gets a stanza of its own",
                    domain=str(sender), service=self.service, why=failure.getErrorMessage(),
                )

        deferred.addCallbacks(answered, failed)
        return deferred

    def refused(self, sender: JID, error: etree._Element | None) -> None:
        """The service bounced a stanza: what it carried is lost, and until the next link every recipient gets its own."""
        conditions = [] if error is None else [c for c in error.iterfind(f"{{{ns.STANZAS}}}*") if c.tag != _TEXT]
        condition = etree.QName(conditions[0]).localname if conditions else "no condition"
        if self.ready:
            log.warn(
                "{domain}: the multicast service {service} refused a stanza ({condition}); every recipient gets a"
                " stanza of its own until the link comes up again",
                domain=str(sender), service=self.service, condition=condition,
            )
        self.ready = False

    def lost(self) -> None:
        """The link is gone: the next one asks again."""
        self.ready = False
        self._asked += 1

    def addressed(self, broadcast: Broadcast, recipients: Sequence[bytes]) -> tuple[Piece, int]:
        """``broadcast`` for each of ``recipients``: what to send, and how many stanzas it is.

        Through the service when it is ready and there are several recipients;
        otherwise a stanza each, as :meth:`Broadcast.to_each` builds them.
        """
        count = len(recipients)
        if not self.ready or count < 2:
            return broadcast.to_each(recipients), count
        kind = broadcast.kind
        limit = self.limits.get(kind, self._default_limit)
        if limit == 0 or kind not in _KINDS:
            # XEP-0033 addresses messages and presences only; a limit of 0 takes none.
            return broadcast.to_each(recipients), count
        room = self.max_bytes - broadcast.size - len(self._address) - _ENVELOPE
        if room <= 0:
            return broadcast.to_each(recipients), count
        if limit is None or limit >= count:
            if sum(map(len, recipients)) + _PER_ADDRESS * count <= room:
                self.stanzas += 1
                self.recipients += count
                return broadcast.via(self._address, recipients), 1
        chunks = _chunks(recipients, limit or count, room)
        if chunks is None:
            # An address longer than a stanza may hold (never a real JID).
            return broadcast.to_each(recipients), count
        self.stanzas += len(chunks)
        self.recipients += count
        return b"".join(broadcast.via(self._address, chunk) for chunk in chunks), len(chunks)


def _chunks(recipients: Sequence[bytes], limit: int, room: int) -> list[Sequence[bytes]] | None:
    """``recipients`` in runs of at most ``limit`` whose addresses take at most ``room`` bytes."""
    chunks: list[Sequence[bytes]] = []
    start = 0
    used = 0
    for index, recipient in enumerate(recipients):
        size = len(recipient) + _PER_ADDRESS
        if size > room:
            return None
        if index - start >= limit or used + size > room:
            chunks.append(recipients[start:index])
            start, used = index, 0
        used += size
    chunks.append(recipients[start:])
    return chunks


def _advertised_limits(info: etree._Element) -> dict[str, int | None]:
    """The limits a service gives in its disco#info (XEP-0128), by stanza kind: a number (0: none), or None for ``infinite``."""
    limits: dict[str, int | None] = {}
    for form in info.iterfind(f"{{{ns.DATA_FORMS}}}x"):
        fields = {field.get("var"): field.findtext(f"{{{ns.DATA_FORMS}}}value") for field in form.iterfind(f"{{{ns.DATA_FORMS}}}field")}
        if fields.get("FORM_TYPE") != ns.ADDRESS:
            continue
        for kind in ("message", "presence"):
            value = (fields.get(kind) or "").strip()
            if value == "infinite":
                limits[kind] = None
            elif value.isdigit():
                limits[kind] = int(value)
    return limits
