"""Routing to entities, error replies, IQ dispatch and tracking, the send queue, keepalive."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from twisted.internet import defer

from component import namespaces as ns
from component.component import DomainSettings, Keepalive
from component.entity import Entity, iq_handler
from component.errors import DEFAULT_ERROR_TYPES, StanzaError
from component.iq import IQTimeout
from component.jid import parse_jid
from component.service import Service
from component.stanza import Stanza, iq, message, parse_sent, presence
from component.testing import NO_PINGS, Harness, LogCapture, assert_xml_equal, parse_stanzas

DOMAIN = "comp.example.org"


class Clock(Entity):
    """Answers a made-up IQ, records what reaches it, and fails on demand."""

    def __init__(self, component, jid):
        super().__init__(component, jid)
        self.seen = []

    @iq_handler("get", "{urn:example:time}time")
    def time(self, stanza):
        self.seen.append(stanza.recipient)
        payload = etree.Element("{urn:example:time}time", nsmap={None: "urn:example:time"})
        payload.text = "12:00"
        return payload

    @iq_handler("set", "{urn:example:time}crash")
    def crash(self, stanza):
        raise RuntimeError("boom")

    @iq_handler("set", "{urn:example:time}later")
    def later(self, stanza):
        self.pending = defer.Deferred()
        return self.pending

    def handle_message(self, stanza):
        self.seen.append(stanza.recipient)
        if stanza.find("{jabber:component:accept}body").text == "forbidden":
            raise StanzaError("forbidden", text="not you")

    def handle_presence(self, stanza):
        self.seen.append(stanza.recipient)


class Rooms(Entity):
    pass


class ClockService(Service):
    name = "clock"

    def start(self):
        self.clock = Clock(self.component, parse_jid(f"clock@{DOMAIN}"))
        self.component.router.register(self.clock)
        self.made = []

        def factory(node):
            if node.startswith("room"):
                self.made.append(node)
                return Rooms(self.component, parse_jid(f"{node}@{DOMAIN}"))
            return None

        self.component.router.set_node_factory(factory)


@pytest.fixture
def harness():
    return Harness(DOMAIN, ClockService)


def service_of(harness):
    return harness.component.services[0]


def test_iq_reaches_its_handler_and_the_result_goes_back(harness):
    harness.receive(
        f"<iq from='juliet@example.com/balcony' to='clock@{DOMAIN}/desk' type='get' id='t1'>"
        "<time xmlns='urn:example:time'/></iq>"
    )
    harness.expect(
        f"<iq from='clock@{DOMAIN}/desk' to='juliet@example.com/balcony' type='result' id='t1'>"
        "<time xmlns='urn:example:time'>12:00</time></iq>"
    )
    assert service_of(harness).clock.seen == [parse_jid(f"clock@{DOMAIN}/desk")]


def test_full_jid_reaches_the_bare_entity_which_sees_the_resource(harness):
    harness.receive(f"<presence from='juliet@example.com/balcony' to='clock@{DOMAIN}/alarm'/>")
    assert service_of(harness).clock.seen[-1].resource == "alarm"
    harness.expect_nothing()


def test_unhandled_iq_is_service_unavailable_with_the_payload_kept(harness):
    harness.receive(
        f"<iq from='juliet@example.com/balcony' to='clock@{DOMAIN}' type='set' id='t2'>"
        "<query xmlns='jabber:iq:roster'/></iq>"
    )
    harness.expect(
        f"<iq from='clock@{DOMAIN}' to='juliet@example.com/balcony' type='error' id='t2'>"
        "<query xmlns='jabber:iq:roster'/>"
        "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    )


def test_nobody_at_the_address(harness):
    harness.receive(
        f"<iq from='juliet@example.com/balcony' to='nobody@{DOMAIN}' type='get' id='t3'>"
        "<time xmlns='urn:example:time'/></iq>"
        f"<message from='juliet@example.com/balcony' to='nobody@{DOMAIN}' id='m1'><body>hi</body></message>"
        f"<presence from='juliet@example.com/balcony' to='nobody@{DOMAIN}'/>"
        f"<message from='juliet@example.com/balcony' to='nobody@{DOMAIN}' type='error' id='m2'/>"
    )
    harness.expect(
        f"<iq from='nobody@{DOMAIN}' to='juliet@example.com/balcony' type='error' id='t3'>"
        "<time xmlns='urn:example:time'/>"
        "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        f"<message from='nobody@{DOMAIN}' to='juliet@example.com/balcony' type='error' id='m1'><body>hi</body>"
        "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
    )


def test_stanza_error_raised_by_an_entity_becomes_the_reply(harness):
    harness.receive(
        f"<message from='juliet@example.com/balcony' to='clock@{DOMAIN}' type='chat' id='m3'>"
        "<body>forbidden</body></message>"
    )
    harness.expect(
        f"<message from='clock@{DOMAIN}' to='juliet@example.com/balcony' type='error' id='m3'>"
        "<body>forbidden</body><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>not you</text></error></message>"
    )


def test_a_crashing_handler_gets_internal_server_error_and_the_component_keeps_going(harness):
    harness.receive(
        f"<iq from='juliet@example.com/balcony' to='clock@{DOMAIN}' type='set' id='c1'>"
        "<crash xmlns='urn:example:time'/></iq>"
    )
    harness.expect(
        f"<iq from='clock@{DOMAIN}' to='juliet@example.com/balcony' type='error' id='c1'>"
        "<crash xmlns='urn:example:time'/>"
        "<error type='cancel'><internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    )
    harness.receive(
        f"<iq from='juliet@example.com/balcony' to='clock@{DOMAIN}' type='get' id='t4'>"
        "<time xmlns='urn:example:time'/></iq>"
    )
    assert harness.sent()[0].get("type") == "result"


def test_deferred_result_is_sent_when_it_fires(harness):
    harness.receive(
        f"<iq from='juliet@example.com/balcony' to='clock@{DOMAIN}' type='set' id='l1'>"
        "<later xmlns='urn:example:time'/></iq>"
    )
    harness.expect_nothing()
    service_of(harness).clock.pending.callback(None)
    harness.expect(f"<iq from='clock@{DOMAIN}' to='juliet@example.com/balcony' type='result' id='l1'/>")


class Careless(Entity):
    """Handlers written the way a service author might: async, or returning the wrong thing."""

    def __init__(self, component, jid):
        super().__init__(component, jid)
        self.pending = defer.Deferred()

    @iq_handler("get", "{urn:example:time}async")
    async def asynchronous(self, stanza):
        await self.pending
        payload = etree.Element("{urn:example:time}time", nsmap={None: "urn:example:time"})
        payload.text = "12:00"
        return payload

    @iq_handler("set", "{urn:example:time}refuse")
    async def refuse(self, stanza):
        await self.pending
        raise StanzaError("not-allowed")

    @iq_handler("get", "{urn:example:time}list")
    def listing(self, stanza):
        return [etree.Element("{urn:example:time}time")]

    @iq_handler("get", "{urn:example:time}later-list")
    def later_list(self, stanza):
        return defer.succeed(["12:00"])

    async def handle_message(self, stanza):
        await self.pending
        body = stanza.find("{jabber:component:accept}body").text
        if body == "count":
            return 1  # ignored: what a message handler's Deferred fires with is not a reply
        self.send(message(self.jid, stanza.sender, f"you said {body}", id=stanza.id))

    def handle_presence(self, stanza):
        return object()


class CarelessService(Service):
    name = "careless"

    def start(self):
        self.entity = Careless(self.component, parse_jid(f"careless@{DOMAIN}"))
        self.component.router.register(self.entity)


def test_async_handlers_answer_once_they_finish():
    harness = Harness(DOMAIN, CarelessService)
    harness.receive(
        f"<iq from='juliet@example.com/balcony' to='careless@{DOMAIN}' type='get' id='a1'>"
        "<async xmlns='urn:example:time'/></iq>"
        f"<iq from='juliet@example.com/balcony' to='careless@{DOMAIN}' type='set' id='a2'>"
        "<refuse xmlns='urn:example:time'/></iq>"
        f"<message from='juliet@example.com/balcony' to='careless@{DOMAIN}' type='chat' id='a3'>"
        "<body>hi</body></message>"
        f"<message from='juliet@example.com/balcony' to='careless@{DOMAIN}' type='chat' id='a4'>"
        "<body>count</body></message>"
    )
    harness.expect_nothing()
    harness.component.services[0].entity.pending.callback(None)
    harness.expect(
        f"<iq from='careless@{DOMAIN}' to='juliet@example.com/balcony' type='result' id='a1'>"
        "<time xmlns='urn:example:time'>12:00</time></iq>",
        f"<iq from='careless@{DOMAIN}' to='juliet@example.com/balcony' type='error' id='a2'>"
        "<refuse xmlns='urn:example:time'/>"
        "<error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        f"<message from='careless@{DOMAIN}' to='juliet@example.com/balcony' type='chat' id='a3'>"
        "<body>you said hi</body></message>",
    )


def test_a_handler_result_that_is_no_answer_is_internal_server_error_and_logged():
    harness = Harness(DOMAIN, CarelessService)
    with LogCapture() as logs:
        harness.receive(
            f"<iq from='juliet@example.com/balcony' to='careless@{DOMAIN}' type='get' id='w1'>"
            "<list xmlns='urn:example:time'/></iq>"
            f"<iq from='juliet@example.com/balcony' to='careless@{DOMAIN}' type='get' id='w2'>"
            "<later-list xmlns='urn:example:time'/></iq>"
            f"<presence from='juliet@example.com/balcony' to='careless@{DOMAIN}' id='w3'/>"
        )
    harness.expect(
        f"<iq from='careless@{DOMAIN}' to='juliet@example.com/balcony' type='error' id='w1'>"
        "<list xmlns='urn:example:time'/>"
        "<error type='cancel'><internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        f"<iq from='careless@{DOMAIN}' to='juliet@example.com/balcony' type='error' id='w2'>"
        "<later-list xmlns='urn:example:time'/>"
        "<error type='cancel'><internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        f"<presence from='careless@{DOMAIN}' to='juliet@example.com/balcony' type='error' id='w3'>"
        "<error type='cancel'><internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>",
    )
    lines = [line for line in logs.messages() if "returned" in line]
    assert lines == [
        f"{DOMAIN}: Careless.listing returned a value of type list, which is no answer to an iq to careless@{DOMAIN}"
        " (a handler returns None, an element, bytes, a Deferred or a coroutine)",
        f"{DOMAIN}: Careless.later_list returned a Deferred that fired with a value of type list, which is no answer to an iq"
        f" to careless@{DOMAIN} (a handler returns None, an element, bytes, a Deferred or a coroutine)",
        f"{DOMAIN}: Careless.handle_presence returned a value of type object, which is no answer to a presence"
        f" to careless@{DOMAIN} (a handler returns None, an element, bytes, a Deferred or a coroutine)",
    ]


def test_a_handler_returning_no_answer_leaves_the_link_up():
    from twisted.internet.testing import MemoryReactorClock, StringTransport

    from component.component import Component
    from component.connection import ComponentProtocol, handshake_digest

    component = Component(DOMAIN, keepalive=NO_PINGS, clock=MemoryReactorClock())
    component.add_service(CarelessService(component, {}))
    component.start_services()
    protocol = ComponentProtocol(component, "s3cret")
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(
        b"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
        b"xmlns='jabber:component:accept' from='comp.example.org' id='3BF96D32'>"
    )
    assert handshake_digest("3BF96D32", "s3cret").encode() in transport.value()
    protocol.dataReceived(b"<handshake/>")
    transport.clear()
    with LogCapture():
        protocol.dataReceived(
            f"<iq from='juliet@example.com/balcony' to='careless@{DOMAIN}' type='get' id='w4'>"
            "<list xmlns='urn:example:time'/></iq>"
            f"<iq from='juliet@example.com/balcony' to='{DOMAIN}' type='get' id='w5'><ping xmlns='urn:xmpp:ping'/></iq>"
            .encode()
        )
    assert not transport.disconnecting
    assert component.link is protocol
    harness_view = [(e.get("id"), e.get("type")) for e in parse_stanzas(transport.value())]
    assert harness_view == [("w4", "error"), ("w5", "result")]


def test_errors_are_never_answered(harness):
    harness.receive(
        f"<iq from='juliet@example.com/balcony' to='clock@{DOMAIN}' type='error' id='e1'>"
        "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        f"<message from='juliet@example.com/balcony' to='bad@@{DOMAIN}' type='error'/>"
    )
    harness.expect_nothing()


def test_malformed_to_gets_jid_malformed(harness):
    harness.receive(f"<message from='juliet@example.com/balcony' to='a b@{DOMAIN}' id='j1'><body>x</body></message>")
    harness.expect(
        f"<message from='{DOMAIN}' to='juliet@example.com/balcony' type='error' id='j1'><body>x</body>"
        "<error type='modify'><jid-malformed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>invalid 'to' address</text></error></message>"
    )


def test_iq_without_payload_or_bad_type_is_bad_request(harness):
    harness.receive(
        f"<iq from='juliet@example.com/balcony' to='clock@{DOMAIN}' type='get' id='b1'/>"
        f"<iq from='juliet@example.com/balcony' to='clock@{DOMAIN}' type='fetch' id='b2'><x xmlns='urn:x'/></iq>"
    )
    sent = harness.sent()
    assert [(s.get("id"), s.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}bad-request") is not None) for s in sent] == [
        ("b1", True),
        ("b2", True),
    ]


def test_node_factory_creates_entities_on_demand_once(harness):
    for _ in range(3):
        harness.receive(f"<presence from='juliet@example.com/balcony' to='room1@{DOMAIN}/nick'/>")
    assert service_of(harness).made == ["room1"]
    assert harness.component.router.loaded("room1") is not None


def test_asynchronous_node_factory_keeps_stanza_order():
    harness = Harness(DOMAIN)
    pending = defer.Deferred()
    seen = []

    class Recorder(Entity):
        def handle_message(self, stanza):
            seen.append(stanza.id)

    harness.component.router.set_node_factory(lambda node: pending)
    for number in range(3):
        harness.receive(f"<message from='a@b/c' to='room@{DOMAIN}' type='groupchat' id='g{number}'/>")
    assert seen == []
    pending.callback(Recorder(harness.component, parse_jid(f"room@{DOMAIN}")))
    assert seen == ["g0", "g1", "g2"]
    harness.receive(f"<message from='a@b/c' to='room@{DOMAIN}' type='groupchat' id='g3'/>")
    assert seen == ["g0", "g1", "g2", "g3"]


def test_domain_answers_disco_ping_and_version(harness):
    harness.receive(
        f"<iq from='juliet@example.com/balcony' to='{DOMAIN}' type='get' id='d1'>"
        "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        f"<iq from='juliet@example.com/balcony' to='{DOMAIN}' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>"
        f"<iq from='juliet@example.com/balcony' to='{DOMAIN}' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>"
    )
    harness.expect(
        f"<iq from='{DOMAIN}' to='juliet@example.com/balcony' type='result' id='d1'>"
        "<query xmlns='http://jabber.org/protocol/disco#info'>"
        "<identity category='component' type='generic' name='Netherfield'/>"
        "<feature var='http://jabber.org/protocol/commands'/>"
        "<feature var='http://jabber.org/protocol/disco#info'/>"
        "<feature var='http://jabber.org/protocol/disco#items'/>"
        "<feature var='jabber:iq:version'/><feature var='urn:xmpp:ping'/></query></iq>",
        f"<iq from='{DOMAIN}' to='juliet@example.com/balcony' type='result' id='p1'/>",
        f"<iq from='{DOMAIN}' to='juliet@example.com/balcony' type='result' id='v1'>"
        "<query xmlns='jabber:iq:version'><name>Netherfield</name><version>*</version><os>*</os></query></iq>",
    )


class Versioned(Entity):
    """Overrides the built-in software version with a plain method, and ping with a new handler."""

    def _version(self, stanza):
        query = etree.Element("{jabber:iq:version}query", nsmap={None: "jabber:iq:version"})
        etree.SubElement(query, "{jabber:iq:version}name").text = "Clockwork"
        etree.SubElement(query, "{jabber:iq:version}version").text = "2.0"
        return query

    @iq_handler("get", "{urn:xmpp:ping}ping")
    def pong(self, stanza):
        raise StanzaError("resource-constraint", text="too busy to pong")


class Quieter(Versioned):
    """Overrides an inherited decorated handler without the decorator, and the base's _version again."""

    def pong(self, stanza):
        return None

    def _version(self, stanza):
        raise StanzaError("forbidden")


class PingFirst:
    @iq_handler("get", "{urn:xmpp:ping}ping")
    def mixed_in_ping(self, stanza):
        raise StanzaError("not-allowed")


class Mixed(PingFirst, Entity):
    """A mixin listed before Entity wins, as Python's attribute lookup would have it."""


@pytest.mark.parametrize(
    "entity_class, version, ping",
    [
        (
            Versioned,
            "<query xmlns='jabber:iq:version'><name>Clockwork</name><version>2.0</version></query>",
            "<ping xmlns='urn:xmpp:ping'/><error type='wait'>"
            "<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
            "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>too busy to pong</text></error>",
        ),
        (
            Quieter,
            "<query xmlns='jabber:iq:version'/>"
            "<error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>",
            "",
        ),
        (
            Mixed,
            "<query xmlns='jabber:iq:version'><name>Netherfield</name><version>*</version><os>*</os></query>",
            "<ping xmlns='urn:xmpp:ping'/>"
            "<error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>",
        ),
    ],
)
def test_a_subclass_overrides_a_built_in_iq_handler(entity_class, version, ping):
    harness = Harness(DOMAIN)
    harness.component.router.register(entity_class(harness.component, parse_jid(f"bot@{DOMAIN}")))
    harness.receive(
        f"<iq from='juliet@example.com/balcony' to='bot@{DOMAIN}' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>"
        f"<iq from='juliet@example.com/balcony' to='bot@{DOMAIN}' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>"
    )
    version_type = "error" if "<error" in version else "result"
    ping_type = "error" if "<error" in ping else "result"
    harness.expect(
        f"<iq from='bot@{DOMAIN}' to='juliet@example.com/balcony' type='{version_type}' id='v1'>{version}</iq>",
        f"<iq from='bot@{DOMAIN}' to='juliet@example.com/balcony' type='{ping_type}' id='p1'>{ping}</iq>",
    )


class Verbose(Entity):
    """Answers its software version with a name longer than the link takes."""

    def _version(self, stanza):
        query = etree.Element("{jabber:iq:version}query", nsmap={None: "jabber:iq:version"})
        etree.SubElement(query, "{jabber:iq:version}name").text = "x" * 2000
        return query


def test_an_answer_over_the_outgoing_limit_is_refused_and_the_log_names_who_asked():
    harness = Harness(DOMAIN, settings=DomainSettings(max_outgoing_bytes=1024))
    harness.component.router.register(Verbose(harness.component, parse_jid(f"bot@{DOMAIN}")))
    with LogCapture() as logs:
        harness.receive(
            f"<iq from='juliet@example.com/balcony' to='bot@{DOMAIN}' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>"
        )
    harness.expect(
        f"<iq from='bot@{DOMAIN}' to='juliet@example.com/balcony' type='error' id='v1'><query xmlns='jabber:iq:version'/>"
        "<error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>the answer would be larger than 1024 bytes</text></error></iq>"
    )
    assert [line for line in logs.messages() if "did not send" in line] == [
        f"{DOMAIN}: did not send a iq of 2145 bytes to juliet@example.com/balcony; the limit is 1024"
    ]


def test_entity_disco_lists_its_handled_namespaces(harness):
    harness.receive(
        f"<iq from='juliet@example.com/balcony' to='clock@{DOMAIN}' type='get' id='d2'>"
        "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
    )
    features = {f.get("var") for f in harness.sent()[0].iter("{http://jabber.org/protocol/disco#info}feature")}
    assert "urn:example:time" in features


def test_request_matches_reply_by_id_and_address():
    harness = Harness(DOMAIN)
    request = iq(f"bot@{DOMAIN}", "juliet@example.com/balcony", "get", etree.Element("{urn:x}q", nsmap={None: "urn:x"}), id="r1")
    reply = harness.component.request(request)
    harness.sent()
    # The same id from someone else is not the answer.
    harness.receive(f"<iq from='mallory@example.com/x' to='bot@{DOMAIN}' type='result' id='r1'/>")
    assert not reply.called
    harness.receive(f"<iq from='Juliet@example.com/balcony' to='bot@{DOMAIN}' type='result' id='r1'><q xmlns='urn:x'/></iq>")
    assert harness.result_of(reply).get("id") == "r1"
    assert len(harness.component.iq) == 0


def test_request_fails_with_the_error_reply():
    harness = Harness(DOMAIN)
    reply = harness.component.request(iq(f"bot@{DOMAIN}", "juliet@example.com", "get", etree.Element("{urn:x}q", nsmap={None: "urn:x"}), id="r2"))
    harness.receive(
        f"<iq from='juliet@example.com' to='bot@{DOMAIN}' type='error' id='r2'>"
        "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    )
    with pytest.raises(StanzaError) as caught:
        harness.result_of(reply)
    assert (caught.value.condition, caught.value.type) == ("item-not-found", "cancel")


def test_request_times_out():
    harness = Harness(DOMAIN, settings=DomainSettings(iq_timeout=5))
    reply = harness.component.request(iq(f"bot@{DOMAIN}", "juliet@example.com", "get", etree.Element("{urn:x}q", nsmap={None: "urn:x"})))
    harness.clock.advance(4.9)
    assert not reply.called
    harness.clock.advance(0.2)
    with pytest.raises(IQTimeout):
        harness.result_of(reply)
    assert len(harness.component.iq) == 0


def test_sends_wait_while_the_link_is_down_and_go_out_after_the_handshake():
    harness = Harness(DOMAIN, settings=DomainSettings(queue_limit=3), connected=False)
    for number in range(5):
        harness.component.send(message(f"bot@{DOMAIN}", "juliet@example.com", f"m{number}"))
    assert harness.component.queued == 3
    assert harness.component.dropped == 2
    harness.connect()
    assert [m.findtext("{jabber:component:accept}body") for m in harness.sent()] == ["m2", "m3", "m4"]
    assert harness.component.queued == 0


def test_keepalive_ping_drops_a_dead_link():
    harness = Harness(DOMAIN, keepalive=Keepalive(ping_interval=60, ping_timeout=10), connected=False)
    harness.connect()
    harness.clock.advance(60)
    harness.expect(f"<iq from='{DOMAIN}' to='example.org' type='get' id='*'><ping xmlns='urn:xmpp:ping'/></iq>")
    harness.clock.advance(10)
    assert harness.aborted


def test_keepalive_answered_keeps_the_link():
    harness = Harness(DOMAIN, keepalive=Keepalive(ping_interval=60, ping_timeout=10), connected=False)
    harness.connect()
    harness.clock.advance(60)
    ping_id = harness.sent()[0].get("id")
    harness.receive(
        f"<iq from='example.org' to='{DOMAIN}' type='error' id='{ping_id}'>"
        "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    )
    harness.clock.advance(30)
    assert not harness.aborted


def test_goodbye_sends_unavailable_to_everyone_who_saw_available():
    harness = Harness(DOMAIN)
    component = harness.component
    component.send_presence(presence(f"bot@{DOMAIN}", "juliet@example.com"))
    component.send_presence(presence(f"bot@{DOMAIN}", "romeo@example.net/orchard"))
    component.send_presence(presence(f"bot@{DOMAIN}", "romeo@example.net/orchard", type="unavailable"))
    harness.sent()
    component.say_goodbye()
    harness.expect(f"<presence from='bot@{DOMAIN}' to='juliet@example.com' type='unavailable'/>")


@pytest.mark.parametrize("condition", sorted(DEFAULT_ERROR_TYPES))
def test_every_rfc6120_condition_round_trips(condition):
    error = StanzaError(condition, text="why")
    parsed = StanzaError.from_stanza(
        etree.fromstring(
            b"<message xmlns='jabber:component:accept' type='error'>" + etree.tostring(error.to_element()) + b"</message>"
        )
    )
    assert (parsed.condition, parsed.type, parsed.text) == (condition, DEFAULT_ERROR_TYPES[condition], "why")


def test_stanzas_that_would_close_the_stream_are_not_sent():
    harness = Harness(DOMAIN)
    harness.component.send(message("someone@else.example", "juliet@example.com", "spoofed"))
    bad = message(f"bot@{DOMAIN}", "juliet@example.com", "no to")
    del bad.attrib["to"]
    harness.component.send(bad)
    harness.component.send(message(f"bot@{DOMAIN}/res", "juliet@example.com", "fine"))
    harness.component.send(message(DOMAIN, "juliet@example.com", "fine too"))
    assert [m.findtext("{jabber:component:accept}body") for m in harness.sent()] == ["fine", "fine too"]


def test_cached_disco_answer_keeps_odd_ids_and_addresses_exact(harness):
    for _ in range(2):  # built once, then served from the cache
        harness.receive(
            "<iq from='juliet@example.com/b&quot;al&amp;c&lt;ony' to='comp.example.org' type='get' "
            "id='a&amp;b&quot;c&#10;d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        )
        reply = harness.sent()[0]
        assert (reply.get("id"), reply.get("to"), reply.get("type")) == (
            'a&b"c\nd',
            'juliet@example.com/b"al&c<ony',
            "result",
        )
        assert reply[0].tag == "{http://jabber.org/protocol/disco#info}query"


def test_broadcast_splices_the_address_and_an_added_last_child():
    from component.stanza import Broadcast

    marker = b'<stanza-id xmlns="urn:xmpp:sid:0" id="s1" by="room@x&amp;&quot;"/>'
    for element in (message(f"room@{DOMAIN}/nick", "x@y", "hi <&>", type="groupchat"), presence(f"room@{DOMAIN}", "x@y")):
        broadcast = Broadcast(element, marker)
        for recipient in ("a@b/r&\"<", "c@d"):
            parsed = etree.fromstring(broadcast.to(recipient))
            assert parsed.get("to") == recipient
            added = parsed[-1]
            assert (added.tag, added.get("id"), added.get("by")) == ("{urn:xmpp:sid:0}stanza-id", "s1", 'room@x&"')
    assert Broadcast(message(f"room@{DOMAIN}", "x@y", "hi")).size == len(Broadcast(message(f"room@{DOMAIN}", "x@y", "hi")).to(""))


def test_broadcast_of_a_received_element_drops_the_unused_stream_prefix():
    from component.stanza import Broadcast
    from component.stream import StreamParser

    received = []
    parser = StreamParser(
        lambda header: None,
        lambda element: received.append(Broadcast(element)),
        lambda: None,
        on_refused=lambda element, reason: None,
    )
    parser.feed(
        b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' id='1'>"
        b"<message from='a@b/c' to='room@x'><body>hi</body></message>"
        b"<message from='a@b/c' to='room@x'><stream:odd/></message>"
    )
    plain, odd = (broadcast.to("d@e") for broadcast in received)
    # Neither the stream's prefix nor its default namespace is declared again.
    assert plain == b'<message from="a@b/c" to="d@e"><body>hi</body></message>'
    assert b'xmlns:stream="http://etherx.jabber.org/streams"' in odd
    assert [child.tag for child in parse_sent(odd)] == [f"{{{ns.STREAMS}}}odd"]


def test_stanzas_go_out_without_the_namespace_the_stream_declares_and_parse_as_before():
    from component.stanza import Broadcast, in_stream, result_reply_bytes

    element = message(f"bot@{DOMAIN}", "juliet@example.com", "hi", payload=[etree.Element("{urn:x}extra", nsmap={None: "urn:x"})])
    data = in_stream(etree.tostring(element, encoding="utf-8"))
    assert data == (
        b'<message from="bot@comp.example.org" to="juliet@example.com" type="chat">'
        b'<body>hi</body><extra xmlns="urn:x"/></message>'
    )
    assert_xml_equal(parse_sent(data), element)
    assert_xml_equal(parse_sent(Broadcast(element).to("juliet@example.com")), element)
    # A stanza whose own default namespace is another one keeps its declaration.
    assert in_stream(b'<message xmlns="jabber:client" to="a@b"/>') == b'<message xmlns="jabber:client" to="a@b"/>'
    stanza = Stanza(element, "iq", parse_jid("juliet@example.com"), parse_jid(f"bot@{DOMAIN}"))
    element.set("id", "q1")
    reply = parse_sent(result_reply_bytes(stanza, b'<query xmlns="urn:x"/>'))
    assert_xml_equal(reply, f"<iq from='bot@{DOMAIN}' to='juliet@example.com' type='result' id='q1'><query xmlns='urn:x'/></iq>")


def test_broadcast_leaves_the_callers_element_as_it_was():
    from component.stanza import Broadcast

    addressed = message(f"room@{DOMAIN}/nick", "x@y", "hi", type="groupchat")
    unaddressed = presence(f"room@{DOMAIN}", "x@y")
    del unaddressed.attrib["to"]
    for element in (addressed, unaddressed):
        before = etree.tostring(element)
        Broadcast(element, b"<stanza-id xmlns='urn:xmpp:sid:0' id='s1'/>").to("a@b")
        assert etree.tostring(element) == before


def test_a_reply_to_a_request_stays_whole_after_the_stream_lets_go_of_it():
    from component.stream import StreamParser

    harness = Harness(DOMAIN)
    request = iq(f"bot@{DOMAIN}", "juliet@example.com/balcony", "get", etree.Element("{urn:x}q", nsmap={None: "urn:x"}), id="r1")
    replies = [harness.component.request(request)]
    harness.component.request(iq(f"bot@{DOMAIN}", "juliet@example.com/balcony", "get", etree.Element("{urn:x}q", nsmap={None: "urn:x"}), id="r2")).addErrback(replies.append)
    parser = StreamParser(lambda header: None, harness.component.receive, lambda: None, on_refused=lambda element, reason: None)
    parser.feed(
        b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' id='1'>"
        b"<iq from='juliet@example.com/balcony' to='bot@comp.example.org' type='result' id='r1'>"
        b"<q xmlns='urn:x'><item>one</item></q></iq>"
        b"<iq from='juliet@example.com/balcony' to='bot@comp.example.org' type='error' id='r2'>"
        b"<error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><why xmlns='urn:x'/></error></iq>"
        b"<message from='juliet@example.com/balcony' to='bot@comp.example.org'><body>later</body></message>"
    )
    reply = harness.result_of(replies[0])
    # Kept as the request's caller can use it: whole, and serialised without invented prefixes.
    data = etree.tostring(reply)
    assert data.startswith(b'<iq xmlns="jabber:component:accept" ')
    assert_xml_equal(
        etree.fromstring(data),
        f"<iq from='juliet@example.com/balcony' to='bot@{DOMAIN}' type='result' id='r1'>"
        "<q xmlns='urn:x'><item>one</item></q></iq>",
    )
    error = replies[1].value
    assert (error.condition, etree.tostring(error.app_condition)) == ("gone", b'<why xmlns="urn:x"/>')


def test_stanzas_waiting_for_a_load_go_on_to_a_new_entity_when_an_earlier_one_let_it_go():
    """A room asked about while it loads, then created: the creation must not go to the room that left memory."""
    harness = Harness(DOMAIN)
    loads = [defer.Deferred()]
    made = []

    class Vanishing(Entity):
        def handle_message(self, stanza):
            made.append((self, stanza.id))
            if stanza.id == "gone":
                harness.component.router.unload("room")

    def factory(node):
        loads.append(defer.Deferred())
        return loads[-2]

    harness.component.router.set_node_factory(factory)
    for number, id in enumerate(("gone", "after1", "after2")):
        harness.receive(f"<message from='a@b/c' to='room@{DOMAIN}' type='groupchat' id='{id}'/>")
        assert len(loads) == 2, number  # one load for all three
    first = Vanishing(harness.component, parse_jid(f"room@{DOMAIN}"))
    loads[0].callback(first)
    assert [id for _, id in made] == ["gone"]  # the other two wait for a new load
    second = Vanishing(harness.component, parse_jid(f"room@{DOMAIN}"))
    loads[1].callback(second)
    assert made == [(first, "gone"), (second, "after1"), (second, "after2")]
    assert harness.component.router.loaded("room") is second


_XML_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00").filter(
    lambda c: c in "\t\n\r" or (c >= " " and c not in "\ufffe\uffff")), max_size=20)


@given(
    body=st.none() | _XML_TEXT,
    kind=st.sampled_from([None, "chat", "normal", "a\"b"]),
    stanza_id=st.none() | _XML_TEXT,
    thread=st.none() | _XML_TEXT,
    subject=st.none() | _XML_TEXT,
)
@settings(max_examples=300, deadline=None)
def test_a_message_built_as_bytes_is_the_one_serialised(body, kind, stanza_id, thread, subject):
    from component.stanza import in_stream, message_bytes

    sender, recipient = f"echo@{DOMAIN}", "juliet@example.com/balcony & <garden>"
    element = message(sender, recipient, body, type=kind, id=stanza_id, thread=thread, subject=subject)
    expected = in_stream(etree.tostring(element, encoding="utf-8"))
    assert message_bytes(sender, recipient, body, type=kind, id=stanza_id, thread=thread, subject=subject) == expected
