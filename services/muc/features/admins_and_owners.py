"""The lists of admins and owners in the configuration form (XEP-0045 §10.2 ``roomadmins``, ``roomowners``).

Each field is the full list (not a delta, unlike muc#admin, §10.5): who is
listed gets the affiliation, who holds it and is not listed loses it (to
'none', or to admin when the admins' field lists a former owner). The rows
are stored in the transaction of the rest of the form, then applied and
told as a muc#admin change is (§9.6, §10.6: presence to the room for an
occupant, a message with the item for someone absent). A form that would
leave the room without an owner is refused whole (``not-acceptable``).
Prosody 0.12 has neither field (its form has no lists), so this follows
XEP-0045: the fields are ``jid-multi``, filled with the current lists.
"""

from __future__ import annotations

from collections.abc import Sequence

from component.errors import StanzaError
from component.jid import JID, InvalidJID, parse_jid
from services.muc.context import RoomContext
from services.muc.feature import ConfigSubmission, Feature, FieldsAt
from services.muc.features import admin
from services.muc.store import AffiliationChange

__all__ = ["AdminsAndOwners"]

ADMINS = "muc#roomconfig_roomadmins"
OWNERS = "muc#roomconfig_roomowners"


class AdminsAndOwners(Feature):
    """The room's admins and owners, read and set as two fields of the configuration form."""

    name = "admins-and-owners"

    def config_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        for position, var, affiliation, label in ((180, ADMINS, "admin", "Admins"), (190, OWNERS, "owner", "Owners")):
            listed = [str(jid) for jid, _ in room.affiliations.with_affiliation(affiliation)]
            fields.add(position, var, listed, type="jid-multi", label=label)

    def configure_affiliations(self, room: RoomContext, submission: ConfigSubmission) -> Sequence[AffiliationChange]:
        owners, admins = _listed(submission, OWNERS), _listed(submission, ADMINS)
        if owners is None and admins is None:
            return ()
        current = {jid: entry.affiliation for jid, entry in room.affiliations.items()}
        wanted = dict(current)
        if owners is not None:
            if not owners:
                raise StanzaError("not-acceptable", text="a room needs at least one owner")
            kept_owners = set(owners)
            for jid, affiliation in current.items():
                if affiliation == "owner" and jid not in kept_owners:
                    wanted[jid] = "none"
            wanted.update(dict.fromkeys(owners, "owner"))
        if admins is not None:
            kept_admins = set(admins)
            for jid, affiliation in current.items():
                if affiliation == "admin" and jid not in kept_admins and wanted[jid] == "admin":
                    wanted[jid] = "none"
            for jid in admins:
                if wanted.get(jid) != "owner":
                    wanted[jid] = "admin"
        changed = sorted((jid for jid, affiliation in wanted.items() if current.get(jid, "none") != affiliation), key=str)
        return [admin.stored_change(room, jid, wanted[jid], None) for jid in changed]

    def on_affiliations_configured(self, room: RoomContext, changes: Sequence[AffiliationChange]) -> None:
        for row in changes:
            admin.apply_affiliation(room, parse_jid(row.jid), row.affiliation, None, None, row.nick)


def _listed(submission: ConfigSubmission, var: str) -> list[JID] | None:
    """The bare JIDs a jid-multi field lists (None when the form leaves it out); a value that is no JID: not-acceptable."""
    values = submission.values.get(var)
    if values is None:
        return None
    # A dict keeps the form's order and drops repeats in linear time, however long the list.
    listed: dict[JID, None] = {}
    for value in values:
        if not value.strip():
            continue
        try:
            jid = parse_jid(value.strip()).bare
        except InvalidJID:
            raise StanzaError("not-acceptable", text=f"{var}: {value!r} is not a JID") from None
        listed[jid] = None
    return list(listed)
