"""Affiliations and roles (XEP-0045 §5): their ranks, defaults and who may change whose.

Affiliations are long-lived and kept per bare JID; roles last one visit.
The rules here are pure functions of ranks, so the room code only asks
questions ("may this actor ban that user?") and raises what they answer.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from component.errors import StanzaError
from component.jid import JID
from services.muc.nicks import nick_key

__all__ = [
    "AFFILIATION_RANK", "ROLE_RANK", "AffiliationEntry", "Affiliations", "default_role",
    "check_affiliation_change", "check_role_change",
]

#: Affiliations from least to most privileged; 'none' is the absence of one.
AFFILIATION_RANK = {"outcast": -1, "none": 0, "member": 1, "admin": 2, "owner": 3}
#: Roles from least to most privileged; 'none' means not in the room.
ROLE_RANK = {"none": 0, "visitor": 1, "participant": 2, "moderator": 3}


def default_role(affiliation: str, *, moderated: bool, members_only: bool) -> str:
    """The role an occupant gets on entering (§5.1.2): 'none' means it may not enter."""
    if affiliation in ("owner", "admin"):
        return "moderator"
    if affiliation == "member":
        return "participant"
    if affiliation == "outcast" or members_only:
        return "none"
    return "visitor" if moderated else "participant"


@attrs.define(slots=True)
class AffiliationEntry:
    """One standing affiliation, with the reason it was given."""

    affiliation: str
    reason: str = ""
    #: The nick the user registered with the room (§7.10), reserved for it.
    nick: str | None = None


class Affiliations:
    """The affiliations of one room, keyed by bare JID (a bare domain bans a whole server)."""

    __slots__ = ("_entries", "_nicks")

    def __init__(self) -> None:
        self._entries: dict[JID, AffiliationEntry] = {}
        # Registered nicks by what they look like (nicks.nick_key): a look-alike is just as reserved.
        self._nicks: dict[str, JID] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, jid: JID) -> str:
        """The affiliation of ``jid``'s bare JID, or 'outcast' when its whole server is banned."""
        entry = self._entries.get(jid.bare)
        if entry is not None:
            return entry.affiliation
        server = self._entries.get(JID(None, jid.domain))
        if server is not None and server.affiliation == "outcast":
            return "outcast"
        return "none"

    def set(self, jid: JID, affiliation: str, reason: str = "", nick: str | None = None) -> None:
        """Give ``jid`` an affiliation (keeping its registered nick unless given one); 'none' removes it.

        A ban takes the registered nick away (§9.1): the nick is free for others.
        """
        bare = jid.bare
        old = self._entries.pop(bare, None)
        if old is not None and old.nick is not None:
            self._unreserve(old.nick, bare)
        if affiliation == "none":
            return
        if affiliation == "outcast":
            nick = None
        elif nick is None and old is not None:
            nick = old.nick
        self._entries[bare] = AffiliationEntry(affiliation, reason, nick)
        if nick is not None:
            self._nicks[nick_key(nick)] = bare

    def count_after(self, changes: Iterable[tuple[JID, str]]) -> int:
        """How many entries there would be after ``changes`` (bare JID, affiliation; 'none' removes), the last for a JID counting."""
        final = {jid.bare: affiliation for jid, affiliation in changes}
        count = len(self._entries)
        for jid, affiliation in final.items():
            held = jid in self._entries
            if affiliation == "none":
                count -= held
            elif not held:
                count += 1
        return count

    def forget_nick(self, jid: JID) -> None:
        """``jid`` no longer reserves a nick; its affiliation stays."""
        entry = self._entries.get(jid.bare)
        if entry is not None and entry.nick is not None:
            self._unreserve(entry.nick, jid.bare)
            entry.nick = None

    def _unreserve(self, nick: str, bare: JID) -> None:
        # Only its own: nicks registered before look-alikes conflicted may share a key.
        key = nick_key(nick)
        if self._nicks.get(key) == bare:
            del self._nicks[key]

    def entry(self, jid: JID) -> AffiliationEntry | None:
        """The standing affiliation of ``jid``'s bare JID, if any."""
        return self._entries.get(jid.bare)

    def holder_of(self, nick: str) -> JID | None:
        """Who registered ``nick``, or a nick that looks like it, if anyone."""
        return self._nicks.get(nick_key(nick))

    def with_affiliation(self, affiliation: str) -> list[tuple[JID, AffiliationEntry]]:
        """Everyone holding ``affiliation``, sorted by JID."""
        found = [(jid, entry) for jid, entry in self._entries.items() if entry.affiliation == affiliation]
        return sorted(found, key=lambda pair: str(pair[0]))

    def items(self) -> list[tuple[JID, AffiliationEntry]]:
        """Every entry."""
        return list(self._entries.items())

    def owners(self) -> list[JID]:
        """The JIDs of the owners."""
        return [jid for jid, entry in self._entries.items() if entry.affiliation == "owner"]


def check_affiliation_change(
    actor_affiliation: str,
    actor: JID,
    target: JID,
    current: str,
    new: str,
    owners: list[JID],
) -> None:
    """Raise the XEP's error when an actor may not move ``target`` from ``current`` to ``new``.

    Owners may do anything except leave the room without an owner (§10.9:
    conflict). Admins manage members and outcasts among those below them
    (§9: not-allowed for admins and owners, forbidden for anything else).
    """
    if new not in AFFILIATION_RANK:
        raise StanzaError("bad-request", text=f"unknown affiliation {new!r}")
    if actor_affiliation == "owner":
        if current == "owner" and new != "owner" and [o for o in owners if o != target.bare] == []:
            raise StanzaError("conflict", text="a room needs at least one owner")
        return
    if actor_affiliation != "admin":
        raise StanzaError("forbidden")
    if current in ("owner", "admin"):
        raise StanzaError("not-allowed")
    if new in ("owner", "admin"):
        raise StanzaError("forbidden")


def check_role_change(
    actor_affiliation: str,
    actor_role: str,
    target_affiliation: str,
    target_role: str,
    new: str,
) -> None:
    """Raise the XEP's error when an actor may not give an occupant the role ``new`` (§8, §9)."""
    if new not in ROLE_RANK:
        raise StanzaError("bad-request", text=f"unknown role {new!r}")
    if actor_role != "moderator":
        raise StanzaError("forbidden")
    if new == target_role:
        return
    # Admins and owners stay moderators, and nobody acts on someone of
    # higher affiliation (§8.2, §9.7).
    if target_affiliation in ("owner", "admin"):
        raise StanzaError("not-allowed")
    target_rank, actor_rank = AFFILIATION_RANK[target_affiliation], AFFILIATION_RANK[actor_affiliation]
    if target_rank > actor_rank:
        raise StanzaError("not-allowed")
    # Voice cannot be taken from someone at the moderator's own level (§8.4).
    if new == "visitor" and target_rank >= actor_rank and actor_affiliation not in ("owner", "admin"):
        raise StanzaError("not-allowed")
    if "moderator" in (new, target_role) and actor_affiliation not in ("owner", "admin"):
        raise StanzaError("not-allowed")
