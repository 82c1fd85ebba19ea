"""Directed presence: whom each of the domain's addresses told it is available (RFC 6121 §4.6).

A server remembers where an account's available presence went, roster or
not, so that its ``unavailable`` reaches the same JIDs. For the addresses a
component hosts the component is that server: :class:`DirectedPresence`
keeps the record, the component writes it as presences leave, and
presence-keeping entities read it to retract and to answer probes.
"""

from __future__ import annotations

from collections.abc import Iterator

from component.jid import JID

__all__ = ["DirectedPresence"]


class DirectedPresence:
    """For each sending address, the JIDs that last heard it available."""

    __slots__ = ("_told",)

    def __init__(self) -> None:
        self._told: dict[JID, set[JID]] = {}

    def __bool__(self) -> bool:
        return bool(self._told)

    def __iter__(self) -> Iterator[tuple[JID, JID]]:
        """Every (sender, recipient) pair: senders as they first sent, each one's recipients sorted."""
        for sender in self._told:
            for recipient in sorted(self._told[sender], key=str):
                yield sender, recipient

    def sent(self, sender: JID, recipient: JID, kind: str | None) -> None:
        """A presence of type ``kind`` (None: available) left ``sender`` for ``recipient``."""
        if kind is None:
            self._told.setdefault(sender, set()).add(recipient)
        elif kind == "unavailable":
            self.forget(sender, recipient)

    def forget(self, sender: JID, recipient: JID) -> None:
        """``recipient`` needs no ``unavailable`` from ``sender`` (it went offline itself)."""
        told = self._told.get(sender)
        if told is not None:
            told.discard(recipient)
            if not told:
                del self._told[sender]

    def told(self, sender: JID, recipient: JID) -> bool:
        """Whether ``recipient``, or its bare JID, last heard ``sender`` available."""
        told = self._told.get(sender)
        return told is not None and (recipient in told or recipient.bare in told)

    def to_retract(self, sender: JID, only: JID | None = None) -> list[JID]:
        """Where ``sender``'s ``unavailable`` goes (only the JIDs of bare ``only``, if given), sorted.

        A full JID whose bare JID is also listed is dropped from the record
        here: presence to the bare JID reaches every resource, so one
        ``unavailable`` will do. The rest are forgotten as their
        ``unavailable`` is sent.
        """
        told = self._told.get(sender)
        if not told:
            return []
        targets = sorted((jid for jid in told if only is None or jid.bare == only), key=str)
        bare = {jid for jid in targets if jid.is_bare}
        found = []
        for jid in targets:
            if not jid.is_bare and jid.bare in bare:
                told.discard(jid)
            else:
                found.append(jid)
        if not told:
            del self._told[sender]
        return found

    def clear(self) -> None:
        """Forget everything (after a goodbye to all)."""
        self._told.clear()
