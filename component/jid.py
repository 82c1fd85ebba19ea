"""JIDs (RFC 6122 / RFC 7622 addresses): parsing, normalisation, bare and full forms.

Normalisation uses the stringprep profiles that ship with Twisted Words
(nodeprep, resourceprep, nameprep), the same family the servers we attach to
use. Parsing a JID costs tens of microseconds of stringprep, so parsed JIDs are
kept in a bounded LRU cache: a stream of new senders cannot grow memory.
"""

from __future__ import annotations

import re
from functools import lru_cache

import attrs
from twisted.logger import Logger
from twisted.words.protocols.jabber.xmpp_stringprep import nameprep, nodeprep, resourceprep

__all__ = ["JID", "InvalidJID", "parse_jid", "parse_stored_jid"]

log = Logger()

_MAX_PART = 1023
# Three parts and two separators (RFC 7622 §3.1).
_MAX_JID = 3 * _MAX_PART + 2


class InvalidJID(ValueError):
    """The string is not a valid JID."""


@attrs.frozen(slots=True, cache_hash=True)
class JID:
    """A normalised XMPP address. Build one with :func:`parse_jid` or :meth:`JID.of`."""

    node: str | None
    domain: str
    resource: str | None = None
    # The string form, computed once: addresses are serialised on every stanza.
    _text: str = attrs.field(init=False, eq=False, repr=False, hash=False)
    # The bare form, made on first use: a room asks for a sender's on every message,
    # and the parsing cache hands out the same JID for the same address.
    _bare: JID | None = attrs.field(init=False, default=None, eq=False, repr=False, hash=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_text", _format(self.node, self.domain, self.resource))

    @classmethod
    def of(cls, text: str) -> JID:
        """Parse and normalise ``text``; raise :class:`InvalidJID` if it is not a JID."""
        return parse_jid(text)

    @property
    def bare(self) -> JID:
        """This address without its resource."""
        if self.resource is None:
            return self
        bare = self._bare
        if bare is None:
            bare = JID(self.node, self.domain)
            object.__setattr__(self, "_bare", bare)
        return bare

    @property
    def is_bare(self) -> bool:
        """True when there is no resource part."""
        return self.resource is None

    def with_resource(self, resource: str | None) -> JID:
        """This address with another resource, normalised."""
        if resource is None:
            return self.bare
        return JID(self.node, self.domain, _prep_resource(resource))

    def __str__(self) -> str:
        return self._text


def _format(node: str | None, domain: str, resource: str | None) -> str:
    text = domain if node is None else f"{node}@{domain}"
    return text if resource is None else f"{text}/{resource}"


# Fast paths for plain ASCII, where the stringprep profiles reduce to
# case folding and a prohibited set: nodeprep lowercases and forbids space,
# controls and "&'/:<>@; resourceprep leaves printable ASCII as it is;
# Twisted's nameprep lowercases and allows letters, digits and inner
# hyphens. Anything else goes through the profiles themselves, and
# tests/unit/test_jid.py checks both paths agree.
_FAST_NODE = re.compile("[" + re.escape("".join(c for c in map(chr, range(0x21, 0x7F)) if c not in "\"&'/:<>@")) + "]+")
_FAST_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")
_FAST_RESOURCE = re.compile("[ -~]+")
# RFC 7622 §3.2: a final label separator is stripped from the domainpart, be it
# the full stop or one IDNA takes for one (ideographic, fullwidth, halfwidth).
_LABEL_SEPARATORS = frozenset(".\u3002\uff0e\uff61")


def _prep_node(node: str) -> str:
    if _FAST_NODE.fullmatch(node):
        return node.lower()
    prepped: str = nodeprep.prepare(node)
    return prepped


def _prep_domain(domain: str) -> str:
    lowered = domain.lower() if domain.isascii() else domain
    if _FAST_DOMAIN.fullmatch(lowered):
        return lowered
    try:
        prepped: str = nameprep.prepare(domain)
        return prepped.lower()
    except IndexError:
        # Twisted's nameprep reads each label's first character: a label
        # between ideographic full stops, or made only of characters mapped
        # to nothing (zero-width spaces), is empty.
        raise UnicodeError("empty domain label") from None


def _prep_resource(resource: str) -> str:
    if _FAST_RESOURCE.fullmatch(resource):
        prepped = resource
    else:
        try:
            prepped = resourceprep.prepare(resource)
        except UnicodeError as exc:
            raise InvalidJID(f"invalid resource {resource!r}: {exc}") from None
    if not prepped or len(prepped.encode()) > _MAX_PART:
        raise InvalidJID(f"invalid resource {resource!r}")
    return prepped


@lru_cache(maxsize=16384)
def parse_jid(text: str) -> JID:
    """Parse and normalise a JID string; raise :class:`InvalidJID` when it is malformed."""
    if len(text) > _MAX_JID:
        # Refused before stringprep, which maps characters such as soft
        # hyphens to nothing: a huge string of them would make a short JID,
        # and the cache would keep the huge string as its key.
        raise InvalidJID(f"a JID of {len(text)} characters is too long")
    rest, slash, resource = text.partition("/")
    node, at, domain = rest.rpartition("@")
    if slash and not resource:
        raise InvalidJID(f"{text!r} has an empty resource")
    if at and not node:
        raise InvalidJID(f"{text!r} has an empty localpart")
    if domain[-1:] in _LABEL_SEPARATORS:
        domain = domain[:-1]
    if not domain:
        raise InvalidJID(f"{text!r} has no domain")
    if "" in domain.split("."):
        raise InvalidJID(f"{text!r} has an empty domain label")
    try:
        norm_node = _prep_node(node) if at else None
        norm_domain = _prep_domain(domain)
    except UnicodeError as exc:
        raise InvalidJID(f"{text!r} is not a valid JID: {exc}") from None
    if norm_node is not None and (not norm_node or len(norm_node.encode()) > _MAX_PART):
        raise InvalidJID(f"{text!r} has an invalid localpart")
    if len(norm_domain.encode()) > _MAX_PART or any(
        not label or len(label) > 63 for label in norm_domain.split(".")
    ):
        raise InvalidJID(f"{text!r} has an invalid domain")
    if any(c in norm_domain for c in " @/\\<>&'\"\t\r\n"):
        raise InvalidJID(f"{text!r} has an invalid domain")
    norm_resource = _prep_resource(resource) if slash else None
    return JID(norm_node, norm_domain, norm_resource)


def parse_stored_jid(text: str, *, table: str, row: dict[str, str]) -> JID | None:
    """A JID read back from storage, or None, with a warning, when ``text`` is not one.

    One bad row (left by an older version, or written by hand) must not make
    the entity it belongs to unloadable: the caller skips it. ``row`` names
    the row in the warning: its key columns, and the column ``text`` came
    from, to their values.
    """
    try:
        return parse_jid(text)
    except InvalidJID as error:
        log.warn(
            "{table}: skipped the row ({row}): {reason}",
            table=table,
            row=", ".join(f"{name}={value!r}" for name, value in row.items()),
            reason=str(error),
        )
        return None
