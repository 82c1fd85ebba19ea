"""Private messages between occupants (XEP-0045 §7.5): who may send them, and passing them on.

A message to an occupant's room JID goes to every client of that occupant,
readdressed from the sender's room JID, with what only the room may say
removed and an empty ``muc#user`` element added, once every feature's
``check_private_message`` let it pass (two clients of one user always may).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from component.errors import StanzaError
from component.stanza import Broadcast, Stanza
from services.muc.affiliations import ROLE_RANK
from services.muc.claims import strip_claims
from services.muc.config import RoomConfig
from services.muc.context import RoomContext
from services.muc.feature import ConfigSubmission, Feature, FieldsAt
from services.muc.occupants import Occupant
from services.muc.protocol import user_x

__all__ = ["PrivateMessages"]

FIELD = "muc#roomconfig_allowpm"
ALLOW_PM = ("anyone", "participants", "moderators", "none")


class PrivateMessages(Feature):
    """Anyone, participants, moderators or nobody may send private messages."""

    name = "private-messages"

    def config_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        fields.add(
            120, FIELD, room.config.allow_pm, type="list-single", label="Who may send private messages",
            options=[("Anyone", "anyone"), ("Participants", "participants"), ("Moderators", "moderators"), ("Nobody", "none")],
        )

    def configure(self, room: RoomContext, submission: ConfigSubmission, config: RoomConfig) -> Mapping[str, Any]:
        return {"allow_pm": submission.choice(FIELD, config.allow_pm, ALLOW_PM)}

    def roominfo_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        # Who may send private messages, under the configuration form's name, before anyone enters.
        fields.add(80, FIELD, room.config.allow_pm, type="list-single", label="Who may send private messages")

    def check_private_message(self, room: RoomContext, sender: Occupant, target: Occupant) -> None:
        if not _may_send(room.config.allow_pm, sender):
            raise StanzaError("policy-violation", "cancel", text="private messages are restricted in this room")

    def message_to_occupant(self, room: RoomContext, stanza: Stanza) -> None:
        if stanza.type == "groupchat":
            raise StanzaError("bad-request", text="groupchat messages go to the room, not to an occupant")
        sender = room.occupants.by_real(stanza.sender)
        if sender is None:
            raise StanzaError("not-acceptable", text="only occupants may send private messages")
        target = room.occupants.by_nick(stanza.recipient.resource or "")
        if target is None:
            raise StanzaError("item-not-found", text="no such occupant")
        features = room.room_features
        if target.bare != sender.bare:
            for feature in features.private_checks:
                feature.check_private_message(room, sender, target)
        element = stanza.element
        strip_claims(element, {child.tag for child in element}, room.jid)
        element.set("from", room.occupant_jid(sender.nick))
        element.attrib.pop("to", None)
        for feature in features.private_decorators:
            feature.decorate_private(room, sender, element)
        element.append(user_x())
        room.send_to_occupant(target, Broadcast(element))


def _may_send(allowed: str, sender: Occupant) -> bool:
    if allowed == "anyone":
        return True
    if allowed == "participants":
        return ROLE_RANK[sender.role] >= ROLE_RANK["participant"]
    if allowed == "moderators":
        return sender.role == "moderator"
    return False
