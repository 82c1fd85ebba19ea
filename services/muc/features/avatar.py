"""Room avatars: the room's vCard (XEP-0054) and its photo's hash (XEP-0153), as Prosody's ``mod_vcard_muc``.

Anyone may get the vCard of the room's bare JID (``item-not-found`` when it
has none); its owners set it, at most the service's ``max_vcard_bytes``.
Once stored, the room tells its occupants with a ``vcard-temp:x:update``
presence from its bare JID and a status 104 message (its disco#info
changed); each client that enters gets that presence after the subject.
The hash is also ``muc#roominfo_avatarhash`` in the room's disco#info.
"""

from __future__ import annotations

from collections.abc import Mapping

from lxml import etree

from component import namespaces as ns
from component.errors import StanzaError
from component.stanza import Stanza
from services.muc.context import RoomContext
from services.muc.feature import Feature, FieldsAt, IQHandler, Join
from services.muc.occupants import Occupant
from services.muc.protocol import user_x
from services.muc.vcard import VCARD_TAG, RoomVCard, parse_vcard, update_element

__all__ = ["Avatar"]

AVATAR_HASH = "muc#roominfo_avatarhash"


class Avatar(Feature):
    """The room's vCard and avatar."""

    name = "avatar"

    def roominfo_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        if room.config.avatar_hash:
            fields.add(90, AVATAR_HASH, [room.config.avatar_hash], type="text-multi")

    def on_join(self, room: RoomContext, occupant: Occupant, join: Join) -> None:
        if room.config.avatar_hash:
            room.send(_presence(room, room.config.avatar_hash, str(join.sender)))

    def iq_handlers(self) -> Mapping[tuple[str, str], IQHandler]:
        return {("get", VCARD_TAG): _get, ("set", VCARD_TAG): _set}


def _get(room: RoomContext, stanza: Stanza) -> etree._Element:
    if not room.config.vcard:
        raise StanzaError("item-not-found", text="the room has no vCard")
    return RoomVCard(room.config.vcard.encode("utf-8"), room.config.avatar_hash).element()


async def _set(room: RoomContext, stanza: Stanza) -> None:
    if room.affiliation_of(stanza.sender) != "owner":
        raise StanzaError("forbidden", "auth", text="only owners may set the room's vCard")
    vcard = parse_vcard(stanza.element[0], room.service.settings.max_vcard_bytes)
    xml, photo_hash = ("", "") if vcard is None else (vcard.xml.decode("utf-8"), vcard.photo_hash)
    await room.change_settings(vcard=xml, avatar_hash=photo_hash)
    room.broadcast(_presence(room, photo_hash))
    notice = etree.Element(f"{{{ns.COMPONENT}}}message", {"from": str(room.jid), "type": "groupchat"}, nsmap={None: ns.COMPONENT})
    notice.append(user_x(codes=[104]))
    room.broadcast(notice)


def _presence(room: RoomContext, photo_hash: str, to: str | None = None) -> etree._Element:
    presence = etree.Element(f"{{{ns.COMPONENT}}}presence", {"from": str(room.jid)}, nsmap={None: ns.COMPONENT})
    if to is not None:
        presence.set("to", to)
    presence.append(update_element(photo_hash))
    return presence
