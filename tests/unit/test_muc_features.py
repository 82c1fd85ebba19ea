"""The room's features (services.muc.features): registered once, fired in order, each owning its form fields."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from component.errors import StanzaError
from component.testing import Harness
from services.muc.context import RoomContext
from services.muc.feature import Feature, IQHandler, Registry
from services.muc.features import FEATURES
from services.muc.service import MucService
from services.muc.testing import CRONE, ERR, HAG, ROOM, WICCA, immediate_storage, instant_room, muc_harness

XDATA = "{jabber:x:data}"


@pytest.fixture
def harness():
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    return h


def test_the_configuration_form_lists_the_fields_in_the_order_of_xep_0045(harness) -> None:
    h = harness
    h.receive(f"<iq from='{CRONE}' id='c1' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>")
    (reply,) = h.sent()
    assert [field.get("var") for field in reply.iter(f"{XDATA}field")] == [
        "FORM_TYPE",
        "muc#roomconfig_roomname",
        "muc#roomconfig_roomdesc",
        "muc#roomconfig_lang",
        "muc#roomconfig_persistentroom",
        "muc#roomconfig_publicroom",
        "muc#roomconfig_membersonly",
        "muc#roomconfig_moderatedroom",
        "muc#roomconfig_passwordprotectedroom",
        "muc#roomconfig_roomsecret",
        "muc#roomconfig_whois",
        "muc#roomconfig_changesubject",
        "muc#roomconfig_allowpm",
        "muc#roomconfig_allowinvites",
        "muc#roomconfig_maxusers",
        "muc#roomconfig_historylength",
        "muc#roomconfig_presencebroadcast",
        "muc#roomconfig_getmemberlist",
        "muc#roomconfig_enablelogging",
        "muc#roomconfig_enablearchiving",
        "muc#roomconfig_roomadmins",
        "muc#roomconfig_roomowners",
    ]


def test_a_submission_with_two_bad_values_is_refused_for_the_first_and_changes_nothing(harness) -> None:
    h = harness
    query = (
        "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>"
        "<field var='muc#roomconfig_roomname'><value>A Dark Cave</value></field>"
        "<field var='muc#roomconfig_maxusers'><value>many</value></field>"
        "<field var='muc#roomconfig_whois'><value>everyone</value></field>"
        "</x></query>"
    )
    h.receive(f"<iq from='{CRONE}' id='c2' to='{ROOM}' type='set'>{query}</iq>")
    h.expect(
        f"""<iq from='{ROOM}' to='{CRONE}' id='c2' type='error'>{query}
          <error type='modify'><not-acceptable {ERR}/>
          <text {ERR}>muc#roomconfig_whois must be one of moderators, anyone</text></error></iq>"""
    )
    h.receive(f"<iq from='{WICCA}' id='d1' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    (info,) = h.sent()
    assert info[0][0].get("name") == "coven"


def test_every_feature_has_a_name_of_its_own() -> None:
    names = [feature.name for feature in FEATURES.features]
    assert len(set(names)) == len(names)


class _Answers(Feature):
    def __init__(self, name: str) -> None:
        self.name = name

    def iq_handlers(self) -> Mapping[tuple[str, str], IQHandler]:
        return {("get", "{urn:example}query"): lambda room, stanza: None}


def test_two_features_answering_one_iq_are_refused() -> None:
    with pytest.raises(ValueError, match="two room features answer"):
        Registry([_Answers("one"), _Answers("two")])


def test_features_of_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match="distinct names"):
        Registry([Feature(), Feature()])


class _Relays(Feature):
    def __init__(self, name: str) -> None:
        self.name = name

    def message_to_occupant(self, room, stanza) -> None:
        return None


def test_two_features_passing_on_messages_to_occupants_are_refused() -> None:
    with pytest.raises(ValueError, match="two room features have message_to_occupant"):
        Registry([_Relays("one"), _Relays("two")])


class _Featureless(MucService):
    room_features = Registry([])


def test_without_a_feature_for_them_messages_and_iqs_to_occupants_are_refused() -> None:
    h = Harness("chat.shakespeare.lit", (_Featureless, {}))
    h.receive(f"<presence from='{CRONE}' to='{ROOM}/firstwitch'/>")
    h.sent()
    h.receive(f"<message from='{CRONE}' to='{ROOM}/firstwitch' id='p1'><body>Hail</body></message>")
    h.expect(
        f"""<message from='{ROOM}/firstwitch' to='{CRONE}' id='p1' type='error'><body>Hail</body>
              <error type='cancel'><service-unavailable {ERR}/>
              <text {ERR}>the room does not pass messages to occupants</text></error></message>"""
    )
    h.receive(f"<iq from='{CRONE}' to='{ROOM}/firstwitch' id='v1' type='get'><query xmlns='jabber:iq:version'/></iq>")
    h.expect(
        f"""<iq from='{ROOM}/firstwitch' to='{CRONE}' id='v1' type='error'><query xmlns='jabber:iq:version'/>
              <error type='cancel'><service-unavailable {ERR}/>
              <text {ERR}>the room does not pass IQs to occupants</text></error></iq>"""
    )


def test_greetings_go_in_order_of_their_place_and_a_claim_yields_to_its_exceptions() -> None:
    registry = FEATURES
    assert [feature.name for feature in registry.greeters] == ["history", "subject"]
    subject, body = "{jabber:component:accept}subject", "{jabber:component:accept}body"
    assert registry.claim({subject}) == subject
    assert registry.claim({subject, body}) is None


def test_only_the_hooks_a_feature_overrides_are_fired() -> None:
    registry = Registry([_Answers("answers")])
    assert registry.iq.keys() == {("get", "{urn:example}query")}
    assert registry.namespaces == {"urn:example"}
    assert (registry.entry_checks, registry.joined, registry.config_fields) == ((), (), ())


# -- the hooks, fired by the room core --------------------------------------------------------

PROBE = "urn:example:probe"


class _Probe(Feature):
    """A feature that shows where each hook fires: it refuses one nick, marks presences and messages, answers its own IQ."""

    name = "probe"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def disco_features(self, room):
        return (f"{PROBE}#on",)

    def config_fields(self, room, fields) -> None:
        fields.add(15, "probe#field", room.config.name.upper(), type="text-single", label="Probe")

    def roominfo_fields(self, room, fields) -> None:
        fields.add(25, "probe#info", len(room.occupants), label="Probe")

    def check_entry(self, room, join) -> None:
        if join.nick == "thirdwitch":
            raise StanzaError("not-allowed", text="no third witch")

    def entry_codes(self, room, join):
        return (199,)

    def on_join(self, room, occupant, join) -> None:
        self.calls.append(f"join {occupant.nick} new={join.new_occupant}")

    def on_leave(self, room, occupant) -> None:
        self.calls.append(f"leave {occupant.nick}")

    def decorate_presence(self, room, occupant, presence) -> None:
        presence.append(etree.Element(f"{{{PROBE}}}mark", nsmap={None: PROBE}, nick=occupant.nick))

    def decorate_message(self, room, occupant, message) -> None:
        message.append(etree.Element(f"{{{PROBE}}}mark", nsmap={None: PROBE}, nick=occupant.nick))

    def on_config_change(self, room, old, new):
        self.calls.append(f"config {old.name!r} -> {new.name!r}")
        return (198,) if new.name != old.name else ()

    def iq_handlers(self):
        return {("get", f"{{{PROBE}}}query"): lambda room, stanza: etree.Element(f"{{{PROBE}}}query", nsmap={None: PROBE}, count=str(len(room.occupants)))}


def _probe_harness() -> tuple[Any, _Probe]:
    probe = _Probe()

    class _Probed(MucService):
        room_features = Registry([*FEATURES.features, probe])

    h = Harness("chat.shakespeare.lit", (_Probed, {"occupant_id": False}), storage=immediate_storage())
    return h, probe


def test_a_feature_refuses_a_newcomer_and_marks_presences_and_messages() -> None:
    h, probe = _probe_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    assert probe.calls == ["join firstwitch new=True", "config '' -> ''"]
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
    h.expect(
        f"""<presence from='{ROOM}/firstwitch' to='{WICCA}'>
              <mark xmlns='{PROBE}' nick='firstwitch'/>
              <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' role='moderator'/></x></presence>""",
        f"""<presence from='{ROOM}/secondwitch' to='{CRONE}'>
              <mark xmlns='{PROBE}' nick='secondwitch'/>
              <x xmlns='http://jabber.org/protocol/muc#user'>
                <item affiliation='none' jid='{WICCA}' role='participant'/></x></presence>""",
        f"""<presence from='{ROOM}/secondwitch' to='{WICCA}'>
              <mark xmlns='{PROBE}' nick='secondwitch'/>
              <x xmlns='http://jabber.org/protocol/muc#user'>
                <item affiliation='none' jid='{WICCA}' role='participant'/>
                <status code='110'/><status code='199'/></x></presence>""",
        f"<message from='{ROOM}' to='{WICCA}' type='groupchat'><subject/></message>",
    )
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
    h.expect(
        f"""<presence from='{ROOM}/thirdwitch' to='{HAG}' type='error'><x xmlns='http://jabber.org/protocol/muc'/>
              <error type='cancel'><not-allowed {ERR}/><text {ERR}>no third witch</text></error></presence>"""
    )
    h.receive(f"<message from='{WICCA}' to='{ROOM}' type='groupchat' id='m1'><body>Hail</body></message>")
    reflected = h.sent()
    assert [m.get("to") for m in reflected] == [CRONE, WICCA]
    assert [child.tag for child in reflected[0]] == [
        "{jabber:component:accept}body", f"{{{PROBE}}}mark", "{urn:xmpp:sid:0}stanza-id",
    ]
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch' type='unavailable'/>")
    h.sent()
    assert probe.calls[2:] == ["join secondwitch new=True", "leave secondwitch"]


def test_a_feature_adds_its_field_disco_feature_iq_and_status_code() -> None:
    h, probe = _probe_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    h.receive(f"<iq from='{CRONE}' id='c1' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>")
    (form,) = h.sent()
    assert [f.get("var") for f in form.iter(f"{XDATA}field")][1:4] == [
        "muc#roomconfig_roomname", "probe#field", "muc#roomconfig_roomdesc",
    ]
    h.receive(
        f"<iq from='{CRONE}' id='c2' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        "<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_roomname'><value>Cave</value></field></x>"
        "</query></iq>"
    )
    h.expect(
        f"<iq from='{ROOM}' id='c2' to='{CRONE}' type='result'/>",  # the owner's answer, then the announcement
        f"""<message from='{ROOM}' to='{CRONE}' type='groupchat'><x xmlns='http://jabber.org/protocol/muc#user'>
              <status code='104'/><status code='198'/></x></message>""",
    )
    assert probe.calls[-1] == "config '' -> 'Cave'"
    h.receive(f"<iq from='{HAG}' id='d1' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    (info,) = h.sent()
    features = {f.get("var") for f in info[0].iter("{http://jabber.org/protocol/disco#info}feature")}
    assert {f"{PROBE}#on", PROBE} <= features
    assert [f.get("var") for f in info.iter(f"{XDATA}field")][3:6] == [
        "muc#roominfo_occupants", "probe#info", "muc#roominfo_subject",
    ]
    h.receive(f"<iq from='{HAG}' id='p1' to='{ROOM}' type='get'><query xmlns='{PROBE}'/></iq>")
    h.expect(f"<iq from='{ROOM}' id='p1' to='{HAG}' type='result'><query xmlns='{PROBE}' count='1'/></iq>")


# -- the seam ---------------------------------------------------------------------------------

FEATURE_FILES = sorted((Path(__file__).parents[2] / "services" / "muc" / "features").glob("*.py"))


@pytest.mark.parametrize("path", FEATURE_FILES, ids=lambda path: path.name)
def test_a_feature_sees_the_room_only_through_its_context(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "services.muc.room" not in imported
    assigned = [
        f"{path.name}:{target.lineno}: {ast.unparse(target)}"
        for node in ast.walk(tree)
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign))
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Attribute) and _root(target) == "room"
    ]
    assert assigned == []


def _root(node: ast.expr) -> str | None:
    """The name an attribute chain starts from (``room`` for ``room.config.name``)."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def test_the_room_has_every_member_of_its_context(harness) -> None:
    room = harness.component.router.loaded("coven")
    missing = [name for name in dir(RoomContext) if not name.startswith("_") and not hasattr(room, name)]
    assert missing == []
