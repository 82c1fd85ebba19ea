"""Fan-out through the server's multicast service (XEP-0033, ``bcc`` addresses), and without one."""

from __future__ import annotations

import pytest

from component.component import DomainSettings
from component.config import ConfigError, load_config
from component.multicast import Multicast
from component.stanza import Broadcast, address
from component.testing import LogCapture, parse_stanzas
from services.muc.testing import CRONE, HAG, MUC_X, ROOM, WICCA, enter, instant_room, muc_harness

SERVICE = "multicast.shakespeare.lit"
INFO = "xmlns='http://jabber.org/protocol/disco#info'"
ADDRESSES = "xmlns='http://jabber.org/protocol/address'"


def limits_form(message: str) -> str:
    return (
        "<x xmlns='jabber:x:data' type='result'>"
        "<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/address</value></field>"
        f"<field var='message'><value>{message}</value></field></x>"
    )


def answer_disco(h, *, features=("http://jabber.org/protocol/address",), extra: str = "") -> None:
    """Answer the disco#info the component sent its multicast service when the link came up."""
    (request,) = h.expect(f"<iq from='chat.shakespeare.lit' to='{SERVICE}' type='get' id='*'><query {INFO}/></iq>")
    listed = "".join(f"<feature var='{feature}'/>" for feature in features)
    h.receive(
        f"<iq from='{SERVICE}' to='chat.shakespeare.lit' type='result' id='{request.get('id')}'>"
        f"<query {INFO}><identity category='service' type='multicast'/>{listed}{extra}</query></iq>"
    )


def coven(settings: DomainSettings, **disco) -> object:
    h = muc_harness(settings=settings)
    answer_disco(h, **disco)
    instant_room(h, ROOM, CRONE, "firstwitch")
    enter(h, ROOM, "secondwitch", WICCA)
    enter(h, ROOM, "thirdwitch", HAG)
    return h


def say(h, text: str = "Thrice the brinded cat hath mew'd.") -> None:
    h.receive(f"<message from='{WICCA}' id='m1' to='{ROOM}' type='groupchat'><body>{text}</body></message>")


def test_a_groupchat_goes_to_the_service_once_with_every_occupant_a_bcc_address() -> None:
    h = coven(DomainSettings(multicast=SERVICE))
    say(h)
    h.expect(
        f"""<message from='{ROOM}/secondwitch' id='m1' to='{SERVICE}' type='groupchat'>
          <addresses {ADDRESSES}>
            <address type='bcc' jid='{CRONE}'/><address type='bcc' jid='{WICCA}'/><address type='bcc' jid='{HAG}'/>
          </addresses>
          <body>Thrice the brinded cat hath mew'd.</body>
          <stanza-id xmlns='urn:xmpp:sid:0' id='*' by='{ROOM}'/></message>"""
    )
    assert h.component.multicast.stanzas == 1 and h.component.multicast.recipients == 3
    assert h.component.sent["message"] >= 1


def test_an_occupant_entering_is_announced_to_the_others_through_the_service() -> None:
    h = coven(DomainSettings(multicast=SERVICE))
    h.receive(f"<presence from='witch4@shakespeare.lit/broom' to='{ROOM}/fourthwitch'>{MUC_X}</presence>")
    sent = h.sent()
    to_service = [stanza for stanza in sent if stanza.get("to") == SERVICE]
    assert len(to_service) == 1
    announced = to_service[0]
    assert announced.tag == "{jabber:component:accept}presence" and announced.get("from") == f"{ROOM}/fourthwitch"
    bcc = [a.get("jid") for a in announced.iter("{http://jabber.org/protocol/address}address")]
    # The room is semi-anonymous: the two participants get the presence without the real JID, in one stanza;
    # the owner, a moderator, alone gets it with the JID, straight.
    assert bcc == [WICCA, HAG]
    assert announced.find(".//{http://jabber.org/protocol/muc#user}item").get("jid") is None
    (owners,) = [stanza for stanza in sent if stanza.get("to") == CRONE]
    assert owners.find(".//{http://jabber.org/protocol/muc#user}item").get("jid") == "witch4@shakespeare.lit/broom"
    # The newcomer's own presences come straight to it, as before.
    assert {stanza.get("to") for stanza in sent} == {SERVICE, CRONE, "witch4@shakespeare.lit/broom"}


def test_without_the_service_each_occupant_gets_a_stanza_of_its_own() -> None:
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    enter(h, ROOM, "secondwitch", WICCA)
    say(h)
    assert [stanza.get("to") for stanza in h.sent()] == [CRONE, WICCA]
    assert h.component.multicast is None


def test_a_service_that_is_no_multicast_service_is_not_used_and_says_so() -> None:
    with LogCapture() as logs:
        h = coven(DomainSettings(multicast=SERVICE), features=("http://jabber.org/protocol/disco#info",))
    say(h)
    assert [stanza.get("to") for stanza in h.sent()] == [CRONE, WICCA, HAG]
    assert any("does not say it is a multicast service" in line for line in logs.messages())


def test_an_error_answer_to_the_check_leaves_one_stanza_per_recipient() -> None:
    h = muc_harness(settings=DomainSettings(multicast=SERVICE, iq_timeout=5))
    (request,) = h.sent()
    h.receive(
        f"<iq from='{SERVICE}' to='chat.shakespeare.lit' type='error' id='{request.get('id')}'>"
        "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    )
    instant_room(h, ROOM, CRONE, "firstwitch")
    enter(h, ROOM, "secondwitch", WICCA)
    say(h)
    assert [stanza.get("to") for stanza in h.sent()] == [CRONE, WICCA]


def test_the_advertised_limit_splits_the_recipients() -> None:
    h = coven(DomainSettings(multicast=SERVICE), extra=limits_form("2"))
    say(h)
    first, second = h.sent()
    assert [a.get("jid") for a in first.iter("{http://jabber.org/protocol/address}address")] == [CRONE, WICCA]
    assert [a.get("jid") for a in second.iter("{http://jabber.org/protocol/address}address")] == [HAG]
    assert first.findtext("{jabber:component:accept}body") == second.findtext("{jabber:component:accept}body")
    assert h.component.multicast.stanzas == 2


def test_the_setting_limits_a_service_that_advertises_none() -> None:
    h = coven(DomainSettings(multicast=SERVICE, multicast_limit=2))
    say(h)
    assert [len(list(s.iter("{http://jabber.org/protocol/address}address"))) for s in h.sent()] == [2, 1]


def test_an_infinite_limit_is_bounded_by_the_stanza_size_alone() -> None:
    h = coven(DomainSettings(multicast=SERVICE, multicast_limit=2), extra=limits_form("infinite"))
    say(h)
    (only,) = h.sent()
    assert len(list(only.iter("{http://jabber.org/protocol/address}address"))) == 3


def test_the_stanza_size_limit_splits_the_recipients() -> None:
    multicast = Multicast(SERVICE, limit=20, max_bytes=1024)
    multicast.ready, multicast.limits = True, {"message": None}
    message = parse_stanzas(f"<message from='{ROOM}/firstwitch' type='groupchat'><body>Fillet of a fenny snake</body></message>")[0]
    recipients = [address(f"witch{i}@shakespeare.lit/cauldron") for i in range(40)]
    data, count = multicast.addressed(Broadcast(message), recipients)
    sent = parse_stanzas(data)
    assert count == len(sent) > 1
    # As sent, each stanza within the limit.
    assert all(len(b"<message " + piece) <= 1024 for piece in data.split(b"<message ")[1:])
    delivered = [a.get("jid") for stanza in sent for a in stanza.iter("{http://jabber.org/protocol/address}address")]
    assert delivered == [f"witch{i}@shakespeare.lit/cauldron" for i in range(40)]
    assert {stanza.get("to") for stanza in sent} == {SERVICE}


def test_a_new_link_asks_again_and_sends_straight_until_answered() -> None:
    h = coven(DomainSettings(multicast=SERVICE))
    h.disconnect()
    h.connect()
    (request,) = h.sent()
    assert request.get("to") == SERVICE
    say(h)
    assert [stanza.get("to") for stanza in h.sent()] == [CRONE, WICCA, HAG]
    h.receive(
        f"<iq from='{SERVICE}' to='chat.shakespeare.lit' type='result' id='{request.get('id')}'>"
        f"<query {INFO}><feature var='http://jabber.org/protocol/address'/></query></iq>"
    )
    say(h)
    assert [stanza.get("to") for stanza in h.sent()] == [SERVICE]


def test_a_single_recipient_gets_its_stanza_straight() -> None:
    h = muc_harness(settings=DomainSettings(multicast=SERVICE))
    answer_disco(h)
    instant_room(h, ROOM, CRONE, "firstwitch")
    h.receive(f"<message from='{CRONE}' id='m1' to='{ROOM}' type='groupchat'><body>alone</body></message>")
    assert [stanza.get("to") for stanza in h.sent()] == [CRONE]


def test_the_setting_must_name_a_domain(tmp_path) -> None:
    config = tmp_path / "netherfield.toml"
    config.write_text(
        '[server]\nport = 5347\n[components."chat.shakespeare.lit"]\nsecret = "s"\nservices = ["echo"]\n'
        'multicast = "someone@multicast.shakespeare.lit"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert "multicast" in str(caught.value) and "a domain" in str(caught.value)


def test_a_check_that_times_out_leaves_one_stanza_per_recipient() -> None:
    with LogCapture() as logs:
        h = muc_harness(settings=DomainSettings(multicast=SERVICE, iq_timeout=5))
        (request,) = h.sent()
        assert request.get("to") == SERVICE
        h.clock.advance(6)
    instant_room(h, ROOM, CRONE, "firstwitch")
    enter(h, ROOM, "secondwitch", WICCA)
    say(h)
    assert [stanza.get("to") for stanza in h.sent()] == [CRONE, WICCA]
    assert any("did not answer disco#info" in line for line in logs.messages())


def test_addresses_a_client_puts_in_its_message_are_not_relayed() -> None:
    h = coven(DomainSettings(multicast=SERVICE))
    h.receive(
        f"""<message from='{WICCA}' id='m2' to='{ROOM}' type='groupchat'><body>Round about the cauldron go</body>
          <addresses {ADDRESSES}><address type='to' jid='victim@elsewhere.lit'/></addresses></message>"""
    )
    h.expect(
        f"""<message from='{ROOM}/secondwitch' id='m2' to='{SERVICE}' type='groupchat'>
          <addresses {ADDRESSES}>
            <address type='bcc' jid='{CRONE}'/><address type='bcc' jid='{WICCA}'/><address type='bcc' jid='{HAG}'/>
          </addresses>
          <body>Round about the cauldron go</body>
          <stanza-id xmlns='urn:xmpp:sid:0' id='*' by='{ROOM}'/></message>"""
    )


def test_addresses_in_a_presence_are_not_relayed_either() -> None:
    h = coven(DomainSettings(multicast=SERVICE))
    # Two participants besides the one who changes: the presence without real JIDs goes through the service.
    enter(h, ROOM, "fourthwitch", "witch4@shakespeare.lit/broom")
    h.receive(
        f"<presence from='{HAG}' to='{ROOM}/thirdwitch'><show>away</show>"
        f"<addresses {ADDRESSES}><address type='to' jid='victim@elsewhere.lit'/></addresses></presence>"
    )
    sent = h.sent()
    jids = [a.get("jid") for stanza in sent for a in stanza.iter("{http://jabber.org/protocol/address}address")]
    assert "victim@elsewhere.lit" not in jids
    assert [len(stanza.findall("{http://jabber.org/protocol/address}addresses")) for stanza in sent if stanza.get("to") == SERVICE] == [1]


def test_a_bounce_from_the_service_turns_it_off_until_the_next_link() -> None:
    h = coven(DomainSettings(multicast=SERVICE))
    say(h)
    (through,) = h.sent()
    assert through.get("to") == SERVICE
    with LogCapture() as logs:
        h.receive(
            f"<message from='{SERVICE}' to='{ROOM}/secondwitch' id='m1' type='error'><body>x</body>"
            "<error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
        )
    h.expect_nothing()
    assert any("refused a stanza (forbidden)" in line for line in logs.messages())
    say(h)
    assert [stanza.get("to") for stanza in h.sent()] == [CRONE, WICCA, HAG]


def test_an_advertised_limit_of_zero_takes_no_addresses() -> None:
    h = coven(DomainSettings(multicast=SERVICE), extra=limits_form("0"))
    say(h)
    assert [stanza.get("to") for stanza in h.sent()] == [CRONE, WICCA, HAG]


def test_an_iq_is_never_sent_through_the_service() -> None:
    multicast = Multicast(SERVICE, limit=20, max_bytes=65536)
    multicast.ready = True
    request = parse_stanzas(f"<iq from='{ROOM}' type='get' id='q1'><ping xmlns='urn:xmpp:ping'/></iq>")[0]
    data, count = multicast.addressed(Broadcast(request), [address(CRONE), address(WICCA)])
    assert count == 2 and [stanza.get("to") for stanza in parse_stanzas(data)] == [CRONE, WICCA]
