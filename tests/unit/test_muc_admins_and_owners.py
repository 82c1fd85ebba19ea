"""The configuration form's lists of admins and owners (XEP-0045 §10.2 ``roomadmins``, ``roomowners``).

Written as the XEP's examples, with its cast: the stanzas in, the exact stanzas out.
"""

from __future__ import annotations

from services.muc.testing import (
    CRONE,
    ROOM,
    WICCA,
    FailingStorage,
    configure,
    enter,
    immediate_storage,
    instant_room,
    muc_harness,
)

USER = "http://jabber.org/protocol/muc#user"
ADMINS = "muc#roomconfig_roomadmins"
OWNERS = "muc#roomconfig_roomowners"
HECATE = "hecate@shakespeare.lit"
PERSISTENT = "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"


def listing(var: str, *jids: str) -> str:
    return f"<field var='{var}'>" + "".join(f"<value>{jid}</value>" for jid in jids) + "</field>"


def submit(h, fields: str, id: str = "cfg") -> None:
    h.receive(
        f"<iq from='{CRONE}' id='{id}' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        "<x xmlns='jabber:x:data' type='submit'>"
        "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"
        f"{fields}</x></query></iq>"
    )


def form_lists(h) -> dict[str, list[str]]:
    h.receive(f"<iq from='{CRONE}' id='f' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>")
    (reply,) = h.sent()
    return {
        field.get("var"): [value.text for value in field.findall("{jabber:x:data}value")]
        for field in reply.iter("{jabber:x:data}field")
        if field.get("var") in (ADMINS, OWNERS) and field.get("type") == "jid-multi"
    }


def test_the_form_holds_the_full_lists() -> None:
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    assert form_lists(h) == {ADMINS: [], OWNERS: ["crone1@shakespeare.lit"]}


def test_admins_named_in_the_form_are_told_as_an_admin_change() -> None:
    """§10.1.3's example names wiccarocks and hecate admins: one is in the room, one is not."""
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    enter(h, ROOM, "secondwitch", WICCA)
    submit(h, listing(ADMINS, "wiccarocks@shakespeare.lit", HECATE))
    h.expect(
        # Absent: a message with the item, to those who may see real JIDs (§9.6, as an admin change).
        f"""<message from='{ROOM}' to='{CRONE}'>
          <x xmlns='{USER}'><item affiliation='admin' jid='{HECATE}'/></x></message>""",
        f"""<presence from='{ROOM}/secondwitch' to='{CRONE}'>
          <x xmlns='{USER}'><item affiliation='admin' jid='{WICCA}' role='moderator'/></x></presence>""",
        f"""<presence from='{ROOM}/secondwitch' to='{WICCA}'>
          <x xmlns='{USER}'><item affiliation='admin' jid='{WICCA}' role='moderator'/><status code='110'/></x></presence>""",
        # A new moderator of a semi-anonymous room now sees real JIDs.
        f"""<presence from='{ROOM}/firstwitch' to='{WICCA}'>
          <x xmlns='{USER}'><item affiliation='owner' jid='{CRONE}' role='moderator'/></x></presence>""",
        f"<iq from='{ROOM}' id='cfg' to='{CRONE}' type='result'/>",
    )
    assert form_lists(h) == {ADMINS: [HECATE, "wiccarocks@shakespeare.lit"], OWNERS: ["crone1@shakespeare.lit"]}
    # The list is the full list: who is left out loses the affiliation.
    submit(h, listing(ADMINS, HECATE), "less")
    h.expect(
        f"""<presence from='{ROOM}/secondwitch' to='{CRONE}'>
          <x xmlns='{USER}'><item affiliation='none' jid='{WICCA}' role='participant'/></x></presence>""",
        f"""<presence from='{ROOM}/secondwitch' to='{WICCA}'>
          <x xmlns='{USER}'><item affiliation='none' jid='{WICCA}' role='participant'/><status code='110'/></x></presence>""",
        f"<iq from='{ROOM}' id='less' to='{CRONE}' type='result'/>",
    )


def test_an_owner_named_in_the_form_and_one_left_out() -> None:
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    submit(h, listing(OWNERS, "crone1@shakespeare.lit", HECATE), "add")
    h.expect(
        f"""<message from='{ROOM}' to='{CRONE}'>
          <x xmlns='{USER}'><item affiliation='owner' jid='{HECATE}'/></x></message>""",
        f"<iq from='{ROOM}' id='add' to='{CRONE}' type='result'/>",
    )
    # The first owner hands the room over, staying an admin.
    submit(h, listing(OWNERS, HECATE) + listing(ADMINS, "crone1@shakespeare.lit"), "handover")
    h.expect(
        f"""<presence from='{ROOM}/firstwitch' to='{CRONE}'>
          <x xmlns='{USER}'><item affiliation='admin' jid='{CRONE}' role='moderator'/><status code='110'/></x></presence>""",
        f"<iq from='{ROOM}' id='handover' to='{CRONE}' type='result'/>",
    )
    h.receive(f"<iq from='{CRONE}' id='f' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>")
    assert h.sent()[0].find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}forbidden") is not None


def test_a_form_without_an_owner_or_with_a_bad_jid_is_refused_whole() -> None:
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    for id, fields in (("none", listing(OWNERS)), ("bad", listing(ADMINS, "not@a@jid"))):
        submit(h, "<field var='muc#roomconfig_roomname'><value>A Dark Cave</value></field>" + fields, id)
        (reply,) = h.sent()
        assert reply.get("type") == "error"
        assert reply.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}not-acceptable") is not None
    assert h.component.router.loaded("coven").config.name == ""
    assert form_lists(h) == {ADMINS: [], OWNERS: ["crone1@shakespeare.lit"]}


def test_the_lists_are_stored_in_the_transaction_of_the_rest_of_the_form() -> None:
    storage = immediate_storage(FailingStorage())
    h = muc_harness(storage=storage)
    instant_room(h, ROOM, CRONE, "firstwitch")
    configure(h, PERSISTENT)
    storage.refuse("INSERT INTO muc_affiliations")
    submit(h, "<field var='muc#roomconfig_roomname'><value>A Dark Cave</value></field>" + listing(ADMINS, HECATE))
    (reply,) = h.sent()
    assert reply.get("type") == "error"
    assert h.component.router.loaded("coven").config.name == ""
    storage.accept()
    submit(h, "<field var='muc#roomconfig_roomname'><value>A Dark Cave</value></field>" + listing(ADMINS, HECATE), "ok")
    assert h.sent()[1].get("type") == "result"  # after the message about hecate
    # Restarted: the name and the admin came back together.
    again = muc_harness(storage=storage)
    assert form_lists(again) == {ADMINS: [HECATE], OWNERS: ["crone1@shakespeare.lit"]}
    again.receive(f"<iq from='{CRONE}' id='i' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    assert again.sent()[0][0][0].get("name") == "A Dark Cave"


def test_a_room_becoming_persistent_is_stored_with_the_admins_the_form_names() -> None:
    storage = immediate_storage()
    h = muc_harness(storage=storage)
    instant_room(h, ROOM, CRONE, "firstwitch")
    submit(h, PERSISTENT + listing(ADMINS, HECATE))
    h.sent()
    again = muc_harness(storage=storage)
    assert form_lists(again) == {ADMINS: [HECATE], OWNERS: ["crone1@shakespeare.lit"]}
