"""The room's features (services.muc.features): registered once, fired in order, each owning its form fields."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from services.muc.feature import Feature, IQHandler, Registry
from services.muc.features import FEATURES
from services.muc.testing import CRONE, ERR, ROOM, WICCA, instant_room, muc_harness

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
        "muc#roomconfig_enablelogging",
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


def test_only_the_hooks_a_feature_overrides_are_fired() -> None:
    registry = Registry([_Answers("answers")])
    assert registry.iq.keys() == {("get", "{urn:example}query")}
    assert registry.namespaces == {"urn:example"}
    assert (registry.entry_checks, registry.joined, registry.config_fields) == ((), (), ())
