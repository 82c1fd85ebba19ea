"""The room's subject (XEP-0045 §8.1): who may change it, the change, what a newcomer is sent, and what disco says of it.

The subject itself is the room's (:class:`services.muc.subject.RoomSubject`,
stored with the room). A groupchat message with a ``<subject/>`` and
neither ``<body/>`` nor ``<thread/>`` changes it: checked by every
feature's ``check_subject_change``, stored (and archived) first, then
reflected to the room. Every newcomer gets the subject last (§7.2.16).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from lxml import etree

from component import namespaces as ns
from component.errors import StanzaError
from component.stanza import Broadcast, Stanza, text_of
from services.muc.claims import strip_claims
from services.muc.context import RoomContext
from services.muc.feature import FieldsAt, GroupchatHandler, Join
from services.muc.history import HistoryEntry, archive_record
from services.muc.occupants import KEEP_LISTS_FROM, Occupant
from services.muc.store import SUBJECT
from services.muc.switch import Switch

__all__ = ["Subject"]

_SUBJECT = f"{{{ns.COMPONENT}}}subject"


class Subject(Switch):
    """Moderators, and participants when the room allows it, change the subject."""

    name = "subject"
    setting = "change_subject"
    var = "muc#roomconfig_changesubject"
    position = 110
    label = "Participants may change the subject"
    greets_at = 20
    groupchat_unless = frozenset({f"{{{ns.COMPONENT}}}body", f"{{{ns.COMPONENT}}}thread"})

    def roominfo_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        fields.add(30, "muc#roominfo_subject", room.subject.text, label="Current subject")
        fields.add(
            40, "muc#roominfo_changesubject", room.config.change_subject, type="boolean",
            label="Occupants may change the subject",
        )
        # Prosody's name for the same (its clients read that one).
        fields.add(41, self.var, room.config.change_subject, type="boolean", label="Occupants may change the subject")

    def check_subject_change(self, room: RoomContext, occupant: Occupant, subject: str) -> None:
        if not (occupant.role == "moderator" or (occupant.role == "participant" and room.config.change_subject)):
            raise StanzaError("forbidden", text="you are not allowed to change the subject")

    def groupchat_handlers(self) -> Mapping[str, GroupchatHandler]:
        return {_SUBJECT: _change}

    def greeting(self, room: RoomContext, join: Join) -> Callable[[], None]:
        to = join.sender

        def send() -> None:
            subject = room.subject.message(room.jid, keep=len(room.occupants) >= KEEP_LISTS_FROM)
            room.send_bytes(subject.to(to))

        return send


async def _change(room: RoomContext, stanza: Stanza, _: etree._Element) -> None:
    """A subject change (§8.1): checked, stored with its archive row, then reflected."""
    occupant = room.occupants.by_real(stanza.sender)
    if occupant is None:
        raise StanzaError("not-acceptable", text="only occupants may change the subject")
    subject = text_of(stanza.element, "subject") or ""
    features = room.room_features
    for feature in features.subject_checks:
        feature.check_subject_change(room, occupant, subject)
    element = stanza.element
    element.set("from", room.occupant_jid(occupant.nick))
    element.attrib.pop("to", None)
    strip_claims(element, {child.tag for child in element}, room.jid)
    for feature in features.message_decorators:
        feature.decorate_message(room, occupant, element)
    stanza_id, mark = room.new_stanza_id()
    reflection = Broadcast(element, room.message_children(occupant) + mark)
    # Its time is stored with it: a newcomer's <delay/> says it, after a restart too. Set again as it
    # is, by the same nick, it keeps the time it was set (§7.2.16), though it is reflected (§8.1 MUST).
    now = room.component.clock.seconds()
    at = room.subject.modified_at(subject, occupant.nick, now)
    if room.stored:
        stanza.keep()  # reflected after the write
        # Archived (XEP-0313) with the subject it sets, in one transaction.
        entry = HistoryEntry(reflection, now, str(room.jid), stanza_id)
        record = (
            archive_record(
                stanza, entry, occupant.nick, occupant_id=room.occupant_id(occupant),
                jid_public=not room.config.anonymous, kind=SUBJECT,
            )
            if room.config.archiving else None
        )
        await room.store_subject(subject, occupant.nick, at, record)
    room.subject.set(subject, occupant.nick, at)
    room.reflect(reflection)
