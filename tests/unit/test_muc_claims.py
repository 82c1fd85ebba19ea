"""What only the room may add is the room's: clients' forged stanza-ids, occupant-ids, delays and muc#user elements go.

Measured before: a ``<stanza-id by='COVEN@…'>`` (other case) or ``by='coven@….'``
(trailing dot) survived into the reflection because ``by`` was compared as a
string, and a client's ``<status code='104'/>`` and ``<delay/>`` were reflected
as if the room had added them.
"""

from __future__ import annotations

import pytest

from services.muc.testing import CRONE, HAG, MUC_X, ROOM, WICCA, enter, instant_room, muc_harness

FORGED = {
    "stanza-id in capitals": f"<stanza-id xmlns='urn:xmpp:sid:0' id='forged' by='{ROOM.upper()}'/>",
    "stanza-id with a trailing dot": f"<stanza-id xmlns='urn:xmpp:sid:0' id='forged' by='{ROOM}.'/>",
    "stanza-id with an ideographic dot": f"<stanza-id xmlns='urn:xmpp:sid:0' id='forged' by='{ROOM}\u3002'/>",
    "stanza-id in fullwidth": "<stanza-id xmlns='urn:xmpp:sid:0' id='forged' by='\uff43oven@chat.shakespeare.lit'/>",
    "stanza-id by an occupant JID": f"<stanza-id xmlns='urn:xmpp:sid:0' id='forged' by='{ROOM}/firstwitch'/>",
    "stanza-id without by": "<stanza-id xmlns='urn:xmpp:sid:0' id='forged'/>",
    "stanza-id by no JID": "<stanza-id xmlns='urn:xmpp:sid:0' id='forged' by='@@'/>",
    "occupant-id": "<occupant-id xmlns='urn:xmpp:occupant-id:0' id='forged'/>",
    "delay": f"<delay xmlns='urn:xmpp:delay' from='{ROOM}' stamp='2002-10-13T23:58:37Z'/>",
    "legacy delay": "<x xmlns='jabber:x:delay' stamp='20021013T23:58:37'/>",
    "status 104": "<x xmlns='http://jabber.org/protocol/muc#user'><status code='104'/></x>",
    "a real JID": "<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' jid='crone1@shakespeare.lit'/></x>",
}


@pytest.fixture
def harness():
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    enter(h, ROOM, "secondwitch", WICCA)
    return h


@pytest.mark.parametrize("forged", FORGED.values(), ids=list(FORGED))
def test_a_groupchat_is_reflected_without_what_only_the_room_adds(harness, forged) -> None:
    h = harness
    h.receive(
        f"""<message from='{WICCA}' id='hysf1v37' to='{ROOM}' type='groupchat'>
          <body>Harpier cries</body>{forged}<origin-id xmlns='urn:xmpp:sid:0' id='client-1'/></message>"""
    )
    h.expect(
        *(
            f"""<message from='{ROOM}/secondwitch' id='hysf1v37' to='{jid}' type='groupchat'>
              <body>Harpier cries</body><origin-id xmlns='urn:xmpp:sid:0' id='client-1'/>
              <stanza-id xmlns='urn:xmpp:sid:0' id='*' by='{ROOM}'/></message>"""
            for jid in (CRONE, WICCA)
        )
    )


def test_a_stanza_id_by_someone_else_is_kept(harness) -> None:
    h = harness
    theirs = "<stanza-id xmlns='urn:xmpp:sid:0' id='s1' by='wiccarocks@shakespeare.lit'/>"
    h.receive(f"<message from='{WICCA}' id='m' to='{ROOM}' type='groupchat'><body>hi</body>{theirs}</message>")
    h.expect(
        *(
            f"""<message from='{ROOM}/secondwitch' id='m' to='{jid}' type='groupchat'><body>hi</body>{theirs}
              <stanza-id xmlns='urn:xmpp:sid:0' id='*' by='{ROOM}'/></message>"""
            for jid in (CRONE, WICCA)
        )
    )


@pytest.mark.parametrize("forged", FORGED.values(), ids=list(FORGED))
def test_a_private_message_carries_only_the_rooms_own_muc_user_element(harness, forged) -> None:
    h = harness
    h.receive(
        f"<message from='{WICCA}' id='pm' to='{ROOM}/firstwitch' type='chat'><body>psst</body>{forged}</message>"
    )
    h.expect(
        f"""<message from='{ROOM}/secondwitch' id='pm' to='{CRONE}' type='chat'><body>psst</body>
          <x xmlns='http://jabber.org/protocol/muc#user'/></message>"""
    )


@pytest.mark.parametrize("forged", FORGED.values(), ids=list(FORGED))
def test_a_presence_is_shown_without_what_only_the_room_adds(forged) -> None:
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch'>{MUC_X}<show>away</show>{forged}</presence>")
    h.sent()
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    shown = [s for s in h.sent() if s.get("from") == f"{ROOM}/secondwitch"]
    h.expect()
    assert len(shown) == 1
    children = [child.tag for child in shown[0]]
    assert children == ["{jabber:component:accept}show", "{http://jabber.org/protocol/muc#user}x"]
    x = shown[0][1]
    assert [(c.tag, c.attrib.get("jid")) for c in x] == [("{http://jabber.org/protocol/muc#user}item", None)]
