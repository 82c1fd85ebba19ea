"""Presence broadcast (XEP-0045 §7.2.3, §10.2 ``muc#roomconfig_presencebroadcast``): whose presence the others see.

As Prosody 0.12's ``presence_broadcast.lib.lua``: an occupant whose role is
not listed is not announced to the others (its entering, updates, nick
changes and leaving), nor listed to newcomers, but gets its own presence and
the occupant list as anyone. A role change out of a listed role shows the
occupant leaving; into one, arriving. A change of the setting announces, or
unannounces, the occupants whose role it concerns, then 104. With 'none'
listed, the occupant list also holds the users with an affiliation who are
not in the room (outcasts only to admins and owners, as §9.2 keeps the ban
list to them, where Prosody shows them to all), as unavailable presences with role 'none': under their
registered nick, or (to those who see real JIDs) from the room itself with
their JID, as Prosody does (XEP-0045 says nothing of them). The setting has
no disco feature and no ``muc#roominfo`` field, in Prosody or the XEP.
"""

from __future__ import annotations

from collections.abc import Iterable

from lxml import etree

from component import namespaces as ns
from component.jid import JID
from services.muc.config import BROADCAST_ROLES, RoomConfig
from services.muc.context import RoomContext
from services.muc.occupants import Occupant
from services.muc.protocol import item, user_x
from services.muc.switch import Roles

__all__ = ["PresenceBroadcast"]

class PresenceBroadcast(Roles):
    """The roles whose occupants' presence goes to the others (all three by default)."""

    name = "presence-broadcast"
    setting = "presence_broadcast"
    var = "muc#roomconfig_presencebroadcast"
    position = 152
    label = "Roles whose presence is shown"
    roles = BROADCAST_ROLES

    def broadcasts_presence(self, room: RoomContext, role: str) -> bool:
        return role in room.config.presence_broadcast

    def on_config_change(self, room: RoomContext, old: RoomConfig, new: RoomConfig) -> Iterable[int]:
        if old.presence_broadcast == new.presence_broadcast:
            return ()
        for occupant in room.occupants:
            was, now = occupant.role in old.presence_broadcast, occupant.role in new.presence_broadcast
            if now and not was:
                room.publish(occupant, occupant.presence())
            elif was and not now:
                # The others see it leave; it gets its own presence, as it is (as Prosody).
                gone = etree.Element(f"{{{ns.COMPONENT}}}presence", type="unavailable", nsmap={None: ns.COMPONENT})
                room.publish(occupant, gone, self_sessions=(), shown_before=True)
                room.publish(occupant, occupant.presence())
        return ()

    def extend_occupant_list(self, room: RoomContext, to: JID, viewer: Occupant | None) -> None:
        if "none" not in room.config.presence_broadcast:
            return
        with_jid = viewer is not None and room.sees_real_jids(viewer)
        present = {occupant.bare for occupant in room.occupants.values()} | {to.bare}
        # The ban list is for admins and owners alone (§9.2), which Prosody does not keep to here.
        sees_bans = room.affiliation_of(to) in ("admin", "owner")
        for jid, entry in sorted(room.affiliations.items(), key=lambda pair: str(pair[0])):
            if jid in present or (entry.nick is None and not with_jid):
                continue
            if entry.affiliation == "outcast" and not sees_bans:
                continue
            sender = room.occupant_jid(entry.nick) if entry.nick is not None else str(room.jid)
            presence = etree.Element(
                f"{{{ns.COMPONENT}}}presence", {"from": sender, "to": str(to), "type": "unavailable"},
                nsmap={None: ns.COMPONENT},
            )
            presence.append(user_x([item(entry.affiliation, "none", jid=str(jid) if with_jid else None, nick=entry.nick)]))
            room.send(presence)
