"""The MUC's admin commands (XEP-0050 at the service domain): list rooms, room info, destroy, announce.

XEP-0045's cast, with a service admin at admin@shakespeare.lit/console.
"""

import pytest

from component.jid import parse_jid
from services.muc.testing import CRONE, ERR, HAG, ROOM, WICCA, configure, enter, instant_room, muc_harness

SERVICE = "chat.shakespeare.lit"
ADMIN = "admin@shakespeare.lit/console"
HEATH = "heath@chat.shakespeare.lit"
CMD = "xmlns='http://jabber.org/protocol/commands'"
LIST = "urn:netherfield:muc#list-rooms"
INFO = "urn:netherfield:muc#room-info"
DESTROY = "http://prosody.im/protocol/muc#destroy"
ANNOUNCE = "http://jabber.org/protocol/admin#announce"


@pytest.fixture
def h():
    h = muc_harness({"admins": ["admin@shakespeare.lit"]})
    instant_room(h, ROOM, CRONE, "firstwitch")
    enter(h, ROOM, "secondwitch", WICCA)
    h.clock.advance(100)
    instant_room(h, HEATH, HAG, "thirdwitch")
    configure(h, "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"
                 "<field var='muc#roomconfig_roomname'><value>The Heath</value></field>", owner=HAG, room=HEATH)
    return h


def execute(h, node, who=ADMIN, id="c1"):
    h.receive(f"<iq from='{who}' to='{SERVICE}' type='set' id='{id}'><command {CMD} node='{node}' action='execute'/></iq>")


def complete(h, node, fields, who=ADMIN, id="c2"):
    execute(h, node, who=who, id="c0")
    (reply,) = h.sent()
    sessionid = reply[0].get("sessionid")
    h.receive(f"<iq from='{who}' to='{SERVICE}' type='set' id='{id}'><command {CMD} node='{node}' "
              f"sessionid='{sessionid}' action='complete'><x xmlns='jabber:x:data' type='submit'>{fields}</x>"
              "</command></iq>")
    return sessionid


def test_an_admin_sees_the_services_commands_and_others_none(h):
    h.receive(f"""<iq from='{ADMIN}' to='{SERVICE}' type='get' id='items1'>
        <query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/></iq>""")
    h.expect(f"""<iq from='{SERVICE}' to='{ADMIN}' type='result' id='items1'>
        <query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'>
          <item jid='{SERVICE}' node='{DESTROY}' name='Destroy rooms'/>
          <item jid='{SERVICE}' node='{LIST}' name='List rooms'/>
          <item jid='{SERVICE}' node='{ANNOUNCE}' name='Send an announcement to every room'/>
          <item jid='{SERVICE}' node='{INFO}' name='Show a room'/>
          <item jid='{SERVICE}' node='urn:netherfield:component#status' name="Show the component's status"/>
        </query></iq>""")
    h.receive(f"""<iq from='{CRONE}' to='{SERVICE}' type='get' id='items2'>
        <query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/></iq>""")
    h.expect(f"""<iq from='{SERVICE}' to='{CRONE}' type='result' id='items2'>
        <query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/></iq>""")


@pytest.mark.parametrize("node", [LIST, INFO, DESTROY, ANNOUNCE])
def test_a_room_owner_is_not_a_service_admin(h, node):
    execute(h, node, who=CRONE)
    h.expect(f"""<iq from='{SERVICE}' to='{CRONE}' type='error' id='c1'>
        <command {CMD} node='{node}' action='execute'/>
        <error type='auth'><forbidden {ERR}/><text {ERR}>only the service's admins may run this command</text></error></iq>""")


def _room_item(jid, name, occupants, when, persistent):
    return (f"<item><field var='jid'><value>{jid}</value></field><field var='name'><value>{name}</value></field>"
            f"<field var='occupants'><value>{occupants}</value></field>"
            f"<field var='last-activity'><value>{when}</value></field>"
            f"<field var='persistent'><value>{persistent}</value></field></item>")


LIST_HEAD = f"""<field var='FORM_TYPE' type='hidden'><value>{LIST}</value></field>"""
REPORTED = """<reported><field var='jid' type='jid-single' label='Room'/><field var='name' type='text-single' label='Name'/>
    <field var='occupants' type='text-single' label='Occupants'/>
    <field var='last-activity' type='text-single' label='Last activity'/>
    <field var='persistent' type='boolean' label='Persistent'/></reported>"""


def test_list_rooms_most_recently_active_first(h):
    h.clock.advance(50)
    h.receive(f"<message from='{CRONE}' to='{ROOM}' type='groupchat'><body>Thrice the brinded cat hath mew'd.</body></message>")
    h.sent()
    execute(h, LIST)
    h.expect(f"""<iq from='{SERVICE}' to='{ADMIN}' type='result' id='c1'>
        <command {CMD} node='{LIST}' sessionid='*' status='completed'>
          <x xmlns='jabber:x:data' type='result'><title>Rooms of {SERVICE}</title>{LIST_HEAD}
            <field var='rooms' type='text-single' label='Rooms'><value>2</value></field>
            {REPORTED}
            {_room_item(ROOM, '', 2, '1970-01-01T00:02:30Z', 0)}
            {_room_item(HEATH, 'The Heath', 1, '1970-01-01T00:01:40Z', 1)}
          </x></command></iq>""")


def test_list_rooms_includes_stored_rooms_not_in_memory(h):
    h.receive(f"<message from='{HAG}' to='{HEATH}' type='groupchat'><body>Hail!</body></message>")
    h.receive(f"<presence from='{HAG}' to='{HEATH}/thirdwitch' type='unavailable'/>")
    h.clock.advance(400)  # the empty persistent room leaves memory
    h.sent()
    assert h.component.router.loaded("heath") is None
    execute(h, LIST)
    (reply,) = h.sent()
    items = reply[0][0].findall("{jabber:x:data}item")
    assert [[f[0].text for f in item] for item in items] == [
        [HEATH, "The Heath", "0", "1970-01-01T00:01:40Z", "1"],
        [ROOM, None, "2", "1970-01-01T00:00:00Z", "0"],
    ]
    # Listing did not load it.
    assert h.component.router.loaded("heath") is None


def test_room_info(h):
    execute(h, INFO)
    h.expect(f"""<iq from='{SERVICE}' to='{ADMIN}' type='result' id='c1'>
        <command {CMD} node='{INFO}' sessionid='*' status='executing'>
          <actions execute='complete'><complete/></actions>
          <x xmlns='jabber:x:data' type='form'><title>Show a room</title><instructions>Give the address of the room.</instructions>
            <field var='FORM_TYPE' type='hidden'><value>{INFO}</value></field>
            <field var='room' type='jid-single' label='Room'><required/></field></x></command></iq>""")
    complete(h, INFO, "<field var='room'><value>coven</value></field>")
    b = "type='boolean'"
    t = "type='text-single'"
    h.expect(f"""<iq from='{SERVICE}' to='{ADMIN}' type='result' id='c2'>
        <command {CMD} node='{INFO}' sessionid='*' status='completed'>
          <x xmlns='jabber:x:data' type='result'><title>Room {ROOM}</title>
            <field var='FORM_TYPE' type='hidden'><value>{INFO}</value></field>
            <field var='jid' type='jid-single' label='Room'><value>{ROOM}</value></field>
            <field var='name' {t} label='Name'><value/></field>
            <field var='description' {t} label='Description'><value/></field>
            <field var='subject' {t} label='Subject'><value/></field>
            <field var='persistent' {b} label='Persistent'><value>0</value></field>
            <field var='public' {b} label='Listed in the directory'><value>1</value></field>
            <field var='members-only' {b} label='Members only'><value>0</value></field>
            <field var='moderated' {b} label='Moderated'><value>0</value></field>
            <field var='password-protected' {b} label='Entering needs a password'><value>0</value></field>
            <field var='whois' {t} label='Who sees real JIDs'><value>moderators</value></field>
            <field var='max-users' {t} label='Most occupants (0: no limit)'><value>0</value></field>
            <field var='locked' {b} label='Locked until its owner configures it'><value>0</value></field>
            <field var='owners' type='jid-multi' label='Owners'><value>crone1@shakespeare.lit</value></field>
            <field var='admins' type='jid-multi' label='Admins'/>
            <field var='members' type='jid-multi' label='Members'/>
            <field var='outcasts' type='jid-multi' label='Outcasts'/>
            <field var='occupants' {t} label='Occupants'><value>2</value></field>
            <reported><field var='nick' {t} label='Nick'/><field var='jids' type='jid-multi' label='Real JIDs'/>
              <field var='role' {t} label='Role'/><field var='affiliation' {t} label='Affiliation'/></reported>
            <item><field var='nick'><value>firstwitch</value></field><field var='jids'><value>{CRONE}</value></field>
              <field var='role'><value>moderator</value></field><field var='affiliation'><value>owner</value></field></item>
            <item><field var='nick'><value>secondwitch</value></field><field var='jids'><value>{WICCA}</value></field>
              <field var='role'><value>participant</value></field><field var='affiliation'><value>none</value></field></item>
          </x></command></iq>""")


def test_room_info_of_no_room_leaves_nothing_in_memory(h):
    complete(h, INFO, f"<field var='room'><value>nowhere@{SERVICE}</value></field>")
    h.expect(f"""<iq from='{SERVICE}' to='{ADMIN}' type='result' id='c2'>
        <command {CMD} node='{INFO}' sessionid='*' status='completed'>
          <note type='error'>There is no room nowhere@{SERVICE}.</note></command></iq>""")
    assert h.component.router.loaded("nowhere") is None


def test_room_info_of_a_room_elsewhere_is_a_bad_payload(h):
    complete(h, INFO, "<field var='room'><value>coven@elsewhere.lit</value></field>")
    (reply,) = h.sent()
    assert reply.get("type") == "error"
    assert reply.find(".//{http://jabber.org/protocol/commands}bad-payload") is not None


def test_destroy_tells_the_occupants_as_an_owners_destroy_does(h):
    execute(h, DESTROY)
    h.expect(f"""<iq from='{SERVICE}' to='{ADMIN}' type='result' id='c1'>
        <command {CMD} node='{DESTROY}' sessionid='*' status='executing'>
          <actions execute='complete'><complete/></actions>
          <x xmlns='jabber:x:data' type='form'><title>Destroy rooms</title><instructions>Select the rooms to destroy.</instructions>
            <field var='FORM_TYPE' type='hidden'><value>{DESTROY}</value></field>
            <field var='rooms' type='list-multi' label='Rooms to destroy'><required/>
              <option><value>{ROOM}</value></option><option><value>{HEATH}</value></option></field>
            <field var='reason' type='text-single' label='Reason, told to the occupants'/>
            <field var='alternate' type='jid-single' label="Where the occupants may go instead (a room's address)"/>
          </x></command></iq>""")
    complete(h, DESTROY, f"<field var='rooms'><value>{ROOM}</value><value>nowhere</value></field>"
                         "<field var='reason'><value>Macbeth doth come.</value></field>"
                         f"<field var='alternate'><value>{HEATH}</value></field>")
    # XEP-0045 Example 202, to each occupant.
    h.expect(
        f"""<presence from='{ROOM}/firstwitch' to='{CRONE}' type='unavailable'>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' jid='{CRONE}' role='none'/>
            <destroy jid='{HEATH}'><reason>Macbeth doth come.</reason></destroy><status code='110'/></x></presence>""",
        f"""<presence from='{ROOM}/secondwitch' to='{WICCA}' type='unavailable'>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' jid='{WICCA}' role='none'/>
            <destroy jid='{HEATH}'><reason>Macbeth doth come.</reason></destroy><status code='110'/></x></presence>""",
        f"""<iq from='{SERVICE}' to='{ADMIN}' type='result' id='c2'>
          <command {CMD} node='{DESTROY}' sessionid='*' status='completed'>
            <note type='info'>The following rooms were destroyed:\n{ROOM}</note>
            <note type='error'>There are no such rooms:\nnowhere@{SERVICE}</note></command></iq>""",
    )
    assert h.component.router.loaded("coven") is None
    assert h.component.router.loaded("nowhere") is None
    # The room is gone: entering creates a new one.
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
    assert "201" in [s.get("code") for s in h.sent()[0].iter("{http://jabber.org/protocol/muc#user}status")]


def test_destroy_a_stored_room_not_in_memory(h):
    h.receive(f"<presence from='{HAG}' to='{HEATH}/thirdwitch' type='unavailable'/>")
    h.clock.advance(400)
    h.sent()
    assert h.component.router.loaded("heath") is None
    complete(h, DESTROY, f"<field var='rooms'><value>{HEATH}</value></field>")
    h.expect(f"""<iq from='{SERVICE}' to='{ADMIN}' type='result' id='c2'>
        <command {CMD} node='{DESTROY}' sessionid='*' status='completed'>
          <note type='info'>The following rooms were destroyed:\n{HEATH}</note></command></iq>""")
    stored = h.result_of(h.component.services[0].store.load_room("heath"))
    assert stored is None
    assert h.component.router.loaded("heath") is None


def test_destroy_without_rooms_is_a_bad_payload(h):
    complete(h, DESTROY, "<field var='reason'><value>why not</value></field>")
    (reply,) = h.sent()
    assert reply.find(".//{http://jabber.org/protocol/commands}bad-payload") is not None
    assert h.component.router.loaded("coven") is not None


def test_announce_to_every_room(h):
    execute(h, ANNOUNCE)
    h.expect(f"""<iq from='{SERVICE}' to='{ADMIN}' type='result' id='c1'>
        <command {CMD} node='{ANNOUNCE}' sessionid='*' status='executing'>
          <actions execute='complete'><complete/></actions>
          <x xmlns='jabber:x:data' type='form'><title>Making an Announcement</title>
            <instructions>Fill out this form to make an announcement to the occupants of every room.</instructions>
            <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/admin</value></field>
            <field var='announcement' type='text-multi' label='Announcement'><required/></field>
          </x></command></iq>""")
    complete(h, ANNOUNCE, "<field var='announcement'><value>The service restarts at noon.</value>"
                          "<value>Back by five past.</value></field>")
    h.expect_unordered(
        f"""<message from='{ROOM}' to='{CRONE}' type='groupchat'><body>The service restarts at noon.
Back by five past.</body></message>""",
        f"""<message from='{ROOM}' to='{WICCA}' type='groupchat'><body>The service restarts at noon.
Back by five past.</body></message>""",
        f"""<message from='{HEATH}' to='{HAG}' type='groupchat'><body>The service restarts at noon.
Back by five past.</body></message>""",
        f"""<iq from='{SERVICE}' to='{ADMIN}' type='result' id='c2'>
          <command {CMD} node='{ANNOUNCE}' sessionid='*' status='completed'>
            <note type='info'>Announcement sent to 3 occupants in 2 rooms.</note></command></iq>""",
    )


def test_an_empty_or_huge_announcement_is_a_bad_payload(h):
    complete(h, ANNOUNCE, "<field var='announcement'><value> </value></field>")
    assert h.sent()[0].find(".//{http://jabber.org/protocol/commands}bad-payload") is not None
    complete(h, ANNOUNCE, f"<field var='announcement'><value>{'x' * 500_000}</value></field>")
    (reply,) = h.sent()
    assert reply.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}text").text == "the announcement is too long to send"


def test_the_domains_admins_are_the_services_admins():
    h = muc_harness()
    h.component.admins = frozenset({parse_jid("admin@shakespeare.lit")})
    instant_room(h, ROOM, CRONE, "firstwitch")
    execute(h, LIST)
    assert h.sent()[0][0].get("status") == "completed"
    # And owners of every room, as the MUC's own admins are.
    h.receive(f"<iq from='{ADMIN}' id='cfg' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>")
    assert h.sent()[0].get("type") == "result"


def test_status_counts_the_rooms_and_occupants(h):
    execute(h, "urn:netherfield:component#status")
    (reply,) = h.sent()
    values = {f.get("var"): f[0].text for f in reply[0][0] if f.get("var") and len(f)}
    assert (values["muc_rooms_loaded"], values["muc_occupants"]) == ("2", "3")
