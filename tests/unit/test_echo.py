"""The echo bot, as a client sees it."""

from component.component import DomainSettings
from component.testing import Harness, LogCapture
from services.echo import EchoService

DOMAIN = "echo.example.org"


def test_echoes_chat_with_body_and_thread():
    harness = Harness(DOMAIN, EchoService)
    harness.receive(
        f"<message from='juliet@example.com/balcony' to='echo@{DOMAIN}' type='chat' id='m1'>"
        "<body>Wherefore art thou?</body><thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread>"
        "<active xmlns='http://jabber.org/protocol/chatstates'/></message>"
    )
    harness.expect(
        f"<message from='echo@{DOMAIN}' to='juliet@example.com/balcony' type='chat' id='m1'>"
        "<body>Wherefore art thou?</body><thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread></message>"
    )


def test_echoes_normal_messages_and_ignores_bodiless_and_other_types():
    harness = Harness(DOMAIN, EchoService)
    harness.receive(
        f"<message from='juliet@example.com/balcony' to='echo@{DOMAIN}' id='n1'><body>plain</body></message>"
        f"<message from='juliet@example.com/balcony' to='echo@{DOMAIN}' type='chat'>"
        "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>"
        f"<message from='juliet@example.com/balcony' to='echo@{DOMAIN}' type='headline'><body>news</body></message>"
    )
    harness.expect(f"<message from='echo@{DOMAIN}' to='juliet@example.com/balcony' id='n1'><body>plain</body></message>")


def test_disco_of_the_bot_and_of_the_domain():
    harness = Harness(DOMAIN, EchoService)
    harness.receive(
        f"<iq from='juliet@example.com/balcony' to='echo@{DOMAIN}' type='get' id='i1'>"
        "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        f"<iq from='juliet@example.com/balcony' to='{DOMAIN}' type='get' id='i2'>"
        "<query xmlns='http://jabber.org/protocol/disco#items'/></iq>"
    )
    harness.expect(
        f"<iq from='echo@{DOMAIN}' to='juliet@example.com/balcony' type='result' id='i1'>"
        "<query xmlns='http://jabber.org/protocol/disco#info'><identity category='client' type='bot' name='Echo'/>"
        "<feature var='http://jabber.org/protocol/disco#info'/><feature var='http://jabber.org/protocol/disco#items'/>"
        "<feature var='jabber:iq:version'/><feature var='urn:xmpp:ping'/></query></iq>",
        f"<iq from='{DOMAIN}' to='juliet@example.com/balcony' type='result' id='i2'>"
        f"<query xmlns='http://jabber.org/protocol/disco#items'><item jid='echo@{DOMAIN}' name='Echo'/></query></iq>",
    )


def test_an_empty_type_is_answered_as_normal_without_the_empty_attribute():
    harness = Harness(DOMAIN, EchoService)
    harness.receive(f"<message from='juliet@example.com/balcony' to='echo@{DOMAIN}' type=''><body>x</body></message>")
    harness.expect(f"<message from='echo@{DOMAIN}' to='juliet@example.com/balcony'><body>x</body></message>")


def test_a_reply_over_the_outgoing_limit_is_not_sent_and_the_log_names_its_recipient():
    harness = Harness(DOMAIN, EchoService, settings=DomainSettings(max_outgoing_bytes=1024))
    with LogCapture() as logs:
        harness.receive(
            f"<message from='juliet@example.com/balcony' to='echo@{DOMAIN}' type='chat' id='m1'><body>{'x' * 2000}</body></message>"
        )
    harness.expect()
    assert logs.messages() == [
        f"{DOMAIN}: did not send a stanza of 2113 bytes to juliet@example.com/balcony; the limit is 1024"
    ]
