"""Message Archive Management for a room (XEP-0313): what a query asks, and the stanzas that answer it.

A query (``<query xmlns='urn:xmpp:mam:2'/>`` in an iq set to the room) is
read once into an :class:`ArchiveQuery`: the XEP-0313 form (``start``,
``end``, ``with``, ``before-id``, ``after-id``, ``ids``) becomes a
:class:`~services.muc.archive_store.Selection`, the XEP-0059 ``<set/>``
its paging. Each archived row of the page is then sent as a message from
the room: ``<result/>`` around a XEP-0297 ``<forwarded/>`` holding the
XEP-0203 ``<delay/>`` and the message as the room reflected it (in
``jabber:client``, without ``to``); the iq result's ``<fin/>`` says whether
the selection is complete and gives the page's first and last archive ids
and the selection's count.

``urn:xmpp:mam:1`` queries are answered the same way, in their own
namespace. Where the XEP leaves a choice, this does what Prosody 0.12's
``mod_muc_mam`` does: 20 results unless asked, never more than the
service's ``archive_max_results``, unknown form fields ignored, an
unknown id paged from is ``item-not-found``, first and last of a flipped
page still in archive order.
"""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
from lxml import etree

from component import namespaces as ns
from component import rsm
from component.errors import StanzaError
from component.forms import Form, parse_form
from component.jid import JID, InvalidJID, parse_jid
from component.stanza import address, stamp
from services.muc.archive_store import ArchiveEnds, ArchivePage, Selection
from services.muc.protocol import MUC_USER
from services.muc.store import HistoryRecord

__all__ = [
    "FORWARD", "MAM1", "MAM2", "MAM_EXTENDED", "NAMESPACES",
    "ArchiveQuery", "fin", "metadata", "parse_query", "query_form", "result",
]

MAM2 = "urn:xmpp:mam:2"
MAM1 = "urn:xmpp:mam:1"
#: before-id, after-id, ids and flip-page (XEP-0313 §7.1).
MAM_EXTENDED = MAM2 + "#extended"
FORWARD = "urn:xmpp:forward:0"
NAMESPACES = (MAM2, MAM1)

#: Results of a query that names no ``<max/>`` (Prosody's default).
DEFAULT_MAX = 20
# Archive ids one query may name in its ids field.
_MAX_IDS = 1000

_COMPONENT_NS = f'xmlns="{ns.COMPONENT}"'.encode()
_CLIENT_NS = f'xmlns="{ns.CLIENT}"'.encode()


@attrs.frozen
class ArchiveQuery:
    """One archive query, read from its iq."""

    #: The namespace asked in (mam:2 or mam:1), which the answer uses too.
    namespace: str
    queryid: str | None
    selection: Selection
    #: RSM: the page after this archive id, or the page before it (``""``: the last page).
    after: str | None
    before: str | None
    max: int
    #: ``<flip-page/>``: the page's results newest first.
    flip: bool


def _time(values: dict[str, list[str]], var: str) -> float | None:
    found = values.get(var)
    if not found or not found[0].strip():
        return None
    try:
        when = datetime.fromisoformat(found[0].strip())
    except ValueError:
        raise StanzaError("bad-request", "modify", text=f"{var} must be an XEP-0082 DateTime") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _single(values: dict[str, list[str]], var: str) -> str | None:
    found = values.get(var)
    return found[0].strip() or None if found else None


def _with(text: str | None, room: JID) -> tuple[str | None, str | None]:
    """(nick, real bare JID) that ``with`` keeps: an occupant JID of the room names a nick."""
    if text is None:
        return None, None
    try:
        jid = parse_jid(text)
    except InvalidJID:
        raise StanzaError("jid-malformed", "modify", text="with must be a JID") from None
    if jid.bare == room:
        return jid.resource, None
    return None, str(jid.bare)


def parse_query(query: etree._Element, room: JID, max_results: int) -> ArchiveQuery:
    """Read a ``<query/>`` of mam:2 or mam:1 sent to *room*; a malformed one is a stanza error."""
    namespace = etree.QName(query).namespace or ""
    values: dict[str, list[str]] = {}
    x = query.find(f"{{{ns.DATA_FORMS}}}x")
    if x is not None:
        form = parse_form(x)
        if form.form_type != namespace:
            raise StanzaError("bad-request", "modify", text=f"the form's FORM_TYPE must be {namespace}")
        values = form.values()
    nick, jid = _with(_single(values, "with"), room)
    ids = tuple(value.strip() for value in values.get("ids", ()) if value.strip())
    if len(ids) > _MAX_IDS:
        raise StanzaError("policy-violation", "modify", text=f"a query names at most {_MAX_IDS} ids")
    selection = Selection(
        start=_time(values, "start"),
        end=_time(values, "end"),
        nick=nick,
        jid=jid,
        after_id=_single(values, "after-id"),
        before_id=_single(values, "before-id"),
        ids=ids,
    )
    paging = rsm.parse_request(query)
    asked = DEFAULT_MAX if paging is None or paging.max is None else paging.max
    return ArchiveQuery(
        namespace=namespace,
        queryid=query.get("queryid"),
        selection=selection,
        after=paging.after if paging is not None else None,
        before=paging.before if paging is not None else None,
        max=min(asked, max_results),
        flip=query.find(f"{{{namespace}}}flip-page") is not None,
    )


def query_form(namespace: str) -> etree._Element:
    """The answer to an iq get of an empty ``<query/>``: the fields a query may use (XEP-0313 §4.1.1)."""
    form = Form("form", namespace)
    form.add("with", type="jid-single")
    form.add("start", type="text-single")
    form.add("end", type="text-single")
    form.add("before-id", type="text-single")
    form.add("after-id", type="text-single")
    form.add("ids", type="list-multi")
    query = etree.Element(f"{{{namespace}}}query", nsmap={None: namespace})
    query.append(form.to_element())
    return query


def result(
    record: HistoryRecord,
    query: ArchiveQuery,
    *,
    room: bytes,
    to: bytes,
    real_jid: str | None = None,
) -> bytes:
    """One archived row as the message that carries it to the querier (XEP-0313 §4.2).

    *room* and *to* are escaped addresses (:func:`component.stanza.address`);
    *real_jid*, for a querier who may see it, goes into the forwarded message
    as a muc#user item, as in the room's live presence.
    """
    forwarded = _client_message(record.stanza.encode())
    if real_jid is not None:
        close = forwarded.rindex(b"</")
        forwarded = (
            forwarded[:close]
            + f'<x xmlns="{MUC_USER}"><item jid="'.encode()
            + address(real_jid)
            + b'"/></x>'
            + forwarded[close:]
        )
    queryid = b"" if query.queryid is None else b' queryid="' + address(query.queryid) + b'"'
    return b"".join((
        b'<message from="', room, b'" to="', to, b'">',
        b'<result xmlns="', query.namespace.encode(), b'"', queryid, b' id="', address(record.stanza_id), b'">',
        b'<forwarded xmlns="urn:xmpp:forward:0"><delay xmlns="urn:xmpp:delay" stamp="',
        stamp(record.timestamp).encode(), b'"/>', forwarded,
        b"</forwarded></result></message>",
    ))


def _client_message(stored: bytes) -> bytes:
    """The stored message in ``jabber:client``, as XEP-0297 forwards it.

    Stored as sent, it declares no namespace (the stream's is
    ``jabber:component:accept``); rows stored earlier declare that one.
    """
    name_end = stored.find(b" ")
    if name_end < 0:
        return stored
    if stored.startswith(_COMPONENT_NS, name_end + 1):
        return stored[: name_end + 1] + _CLIENT_NS + stored[name_end + 1 + len(_COMPONENT_NS) :]
    return stored[:name_end] + b" " + _CLIENT_NS + stored[name_end:]


def fin(query: ArchiveQuery, page: ArchivePage) -> etree._Element:
    """The iq result's ``<fin/>``: complete or not, then the RSM first and last ids and the count."""
    element = etree.Element(f"{{{query.namespace}}}fin", nsmap={None: query.namespace})
    if page.complete:
        element.set("complete", "true")
    first = page.rows[0].stanza_id if page.rows else None
    last = page.rows[-1].stanza_id if page.rows else None
    element.append(rsm.set_element(first, last, page.count))
    return element


def metadata(ends: ArchiveEnds) -> etree._Element:
    """The answer to ``<metadata/>``: the archive's first and last ids and times; empty for an empty archive."""
    element = etree.Element(f"{{{MAM2}}}metadata", nsmap={None: MAM2})
    for name, end in (("start", ends.first), ("end", ends.last)):
        if end is not None:
            stanza_id, seconds = end
            etree.SubElement(element, f"{{{MAM2}}}{name}", id=stanza_id, timestamp=stamp(seconds))
    return element
