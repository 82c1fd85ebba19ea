"""Ad-hoc commands (XEP-0050) at the component domain: discovery, execution, sessions, the status command.

The stanzas follow XEP-0050's examples (§2 discovery, §3.2 single and
multiple stages, §3.3 cancel, §4.4 errors), with the domain's status command
and a two-stage test command.
"""

import pytest
from lxml import etree
from twisted.internet import defer

from component.adhoc import Command, Note, Outcome
from component.app import Netherfield
from component.component import DomainSettings
from component.config import ConfigError, load_config
from component.errors import StanzaError
from component.forms import Form
from component.jid import parse_jid
from component.service import Service
from component.stats import Sample
from component.testing import Harness

DOMAIN = "responder.example.org"
ADMIN = "requester@example.com/balcony"
OTHER = "stranger@example.com/pda"
CMD = "xmlns='http://jabber.org/protocol/commands'"
ERR = "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'"
CONFIGURE = "urn:example:configure"


class Configure(Service):
    """A service with a two-stage command, as XEP-0050's 'config' example."""

    name = "configure"

    def start(self):
        self.configured = []

        async def ask(sender):
            form = Form("form", CONFIGURE, title="Configure Service", instructions="Please select the service.")
            form.add("service", type="list-single", label="Service", options=[(None, "httpd"), (None, "jabberd")],
                     required=True)
            return form

        async def run(sender, form):
            service = form.get("service")
            if service is None or not service.value:
                raise StanzaError("bad-request", text="name the service")
            self.configured.append((str(sender), service.value))
            return Outcome(notes=(Note(f"Service '{service.value}' has been configured."),))

        self.component.commands.add(Command(CONFIGURE, "Configure Service", self.component.is_admin, run, ask))


@pytest.fixture
def h():
    return Harness(DOMAIN, Configure, settings=DomainSettings(admins=frozenset({parse_jid("requester@example.com")})))


def execute(h, who=ADMIN, node=CONFIGURE, id="exec1", attrs="", body=""):
    h.receive(f"<iq from='{who}' to='{DOMAIN}' type='set' id='{id}'><command {CMD} node='{node}' {attrs}>{body}</command></iq>")


def start(h, who=ADMIN, id="exec1"):
    execute(h, who=who, id=id, attrs="action='execute'")
    (reply,) = h.sent()
    return reply[0].get("sessionid")


SUBMIT = ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:example:configure</value></field>"
          "<field var='service'><value>httpd</value></field></x>")


# -- discovery (§2) --------------------------------------------------------------------


def test_the_domain_advertises_commands(h):
    h.receive(f"<iq from='{OTHER}' to='{DOMAIN}' type='get' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    (reply,) = h.sent()
    features = [f.get("var") for f in reply[0] if f.tag.endswith("feature")]
    assert "http://jabber.org/protocol/commands" in features


def test_an_admin_sees_the_commands_an_other_sees_none(h):
    h.receive(f"""<iq from='{ADMIN}' to='{DOMAIN}' type='get' id='list1'>
        <query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/></iq>""")
    h.expect(f"""<iq from='{DOMAIN}' to='{ADMIN}' type='result' id='list1'>
        <query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'>
          <item jid='{DOMAIN}' node='urn:example:configure' name='Configure Service'/>
          <item jid='{DOMAIN}' node='urn:netherfield:component#status' name="Show the component's status"/>
        </query></iq>""")
    h.receive(f"""<iq from='{OTHER}' to='{DOMAIN}' type='get' id='list2'>
        <query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/></iq>""")
    h.expect(f"""<iq from='{DOMAIN}' to='{OTHER}' type='result' id='list2'>
        <query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/></iq>""")


def test_command_info_is_for_those_who_may_run_it(h):
    h.receive(f"""<iq from='{ADMIN}' to='{DOMAIN}' type='get' id='info1'>
        <query xmlns='http://jabber.org/protocol/disco#info' node='urn:example:configure'/></iq>""")
    h.expect(f"""<iq from='{DOMAIN}' to='{ADMIN}' type='result' id='info1'>
        <query xmlns='http://jabber.org/protocol/disco#info' node='urn:example:configure'>
          <identity category='automation' type='command-node' name='Configure Service'/>
          <feature var='http://jabber.org/protocol/commands'/>
          <feature var='jabber:x:data'/>
        </query></iq>""")
    h.receive(f"""<iq from='{OTHER}' to='{DOMAIN}' type='get' id='info2'>
        <query xmlns='http://jabber.org/protocol/disco#info' node='urn:example:configure'/></iq>""")
    h.expect(f"""<iq from='{DOMAIN}' to='{OTHER}' type='error' id='info2'>
        <query xmlns='http://jabber.org/protocol/disco#info' node='urn:example:configure'/>
        <error type='cancel'><item-not-found {ERR}/></error></iq>""")
    h.receive(f"""<iq from='{OTHER}' to='{DOMAIN}' type='get' id='info3'>
        <query xmlns='http://jabber.org/protocol/disco#info' node='http://jabber.org/protocol/commands'/></iq>""")
    h.expect(f"""<iq from='{DOMAIN}' to='{OTHER}' type='result' id='info3'>
        <query xmlns='http://jabber.org/protocol/disco#info' node='http://jabber.org/protocol/commands'>
          <identity category='automation' type='command-list' name='Commands'/>
          <feature var='http://jabber.org/protocol/commands'/>
        </query></iq>""")


# -- execution (§3) ---------------------------------------------------------------------


def test_a_two_stage_command_asks_then_completes(h):
    execute(h, attrs="action='execute'")
    (reply,) = h.expect(f"""<iq from='{DOMAIN}' to='{ADMIN}' type='result' id='exec1'>
        <command {CMD} node='urn:example:configure' sessionid='*' status='executing'>
          <actions execute='complete'><complete/></actions>
          <x xmlns='jabber:x:data' type='form'>
            <title>Configure Service</title>
            <instructions>Please select the service.</instructions>
            <field var='FORM_TYPE' type='hidden'><value>urn:example:configure</value></field>
            <field var='service' type='list-single' label='Service'><required/>
              <option><value>httpd</value></option><option><value>jabberd</value></option></field>
          </x></command></iq>""")
    sessionid = reply[0].get("sessionid")
    execute(h, id="exec2", attrs=f"sessionid='{sessionid}' action='complete'", body=SUBMIT)
    h.expect(f"""<iq from='{DOMAIN}' to='{ADMIN}' type='result' id='exec2'>
        <command {CMD} node='urn:example:configure' sessionid='{sessionid}' status='completed'>
          <note type='info'>Service 'httpd' has been configured.</note></command></iq>""")
    assert h.component.services[0].configured == [(ADMIN, "httpd")]
    # The session is over: the same sessionid is no longer valid.
    execute(h, id="exec3", attrs=f"sessionid='{sessionid}' action='complete'", body=SUBMIT)
    h.expect(f"""<iq from='{DOMAIN}' to='{ADMIN}' type='error' id='exec3'>
        <command {CMD} node='urn:example:configure' sessionid='{sessionid}' action='complete'>{SUBMIT}</command>
        <error type='modify'><bad-request {ERR}/><text {ERR}>no such session</text><bad-sessionid {CMD}/></error></iq>""")


def test_execute_without_an_action_is_the_default_action(h):
    execute(h)
    (reply,) = h.sent()
    assert reply[0].get("status") == "executing"
    sessionid = reply[0].get("sessionid")
    execute(h, id="exec2", attrs=f"sessionid='{sessionid}'", body=SUBMIT)
    (reply,) = h.sent()
    assert reply[0].get("status") == "completed"


def test_cancel_ends_the_session(h):
    sessionid = start(h)
    execute(h, id="exec2", attrs=f"sessionid='{sessionid}' action='cancel'")
    h.expect(f"""<iq from='{DOMAIN}' to='{ADMIN}' type='result' id='exec2'>
        <command {CMD} node='urn:example:configure' sessionid='{sessionid}' status='canceled'/></iq>""")
    execute(h, id="exec3", attrs=f"sessionid='{sessionid}' action='complete'", body=SUBMIT)
    assert h.sent()[0].find(".//{http://jabber.org/protocol/commands}bad-sessionid") is not None
    assert h.component.services[0].configured == []


def test_a_stranger_is_forbidden(h):
    execute(h, who=OTHER, attrs="action='execute'")
    h.expect(f"""<iq from='{DOMAIN}' to='{OTHER}' type='error' id='exec1'>
        <command {CMD} node='urn:example:configure' action='execute'/>
        <error type='auth'><forbidden {ERR}/><text {ERR}>only the service's admins may run this command</text></error></iq>""")


def test_an_unknown_node_is_item_not_found(h):
    execute(h, node="urn:example:nothing")
    h.expect(f"""<iq from='{DOMAIN}' to='{ADMIN}' type='error' id='exec1'>
        <command {CMD} node='urn:example:nothing'/>
        <error type='cancel'><item-not-found {ERR}/><text {ERR}>no command at that node</text></error></iq>""")


@pytest.mark.parametrize("attrs, app, condition", [
    ("action='dance'", "malformed-action", "bad-request"),
    ("action='complete'", "bad-action", "bad-request"),
])
def test_a_bad_first_action(h, attrs, app, condition):
    execute(h, attrs=attrs)
    (reply,) = h.sent()
    error = reply.find("{jabber:component:accept}error")
    assert reply.get("type") == "error"
    assert error.find(f"{{urn:ietf:params:xml:ns:xmpp-stanzas}}{condition}") is not None
    assert error.find(f"{{http://jabber.org/protocol/commands}}{app}") is not None


def test_next_is_not_offered_and_a_missing_form_is_a_bad_payload(h):
    sessionid = start(h)
    execute(h, id="e2", attrs=f"sessionid='{sessionid}' action='next'", body=SUBMIT)
    assert h.sent()[0].find(".//{http://jabber.org/protocol/commands}bad-action") is not None
    sessionid = start(h)
    execute(h, id="e3", attrs=f"sessionid='{sessionid}' action='complete'")
    h.expect(f"""<iq from='{DOMAIN}' to='{ADMIN}' type='error' id='e3'>
        <command {CMD} node='urn:example:configure' sessionid='{sessionid}' action='complete'/>
        <error type='modify'><bad-request {ERR}/><text {ERR}>submit the command's form</text><bad-payload {CMD}/></error></iq>""")


def test_a_session_belongs_to_the_full_jid_that_started_it(h):
    sessionid = start(h)
    execute(h, who="requester@example.com/other", id="e2", attrs=f"sessionid='{sessionid}' action='complete'", body=SUBMIT)
    assert h.sent()[0].find(".//{http://jabber.org/protocol/commands}bad-sessionid") is not None
    # The owner still can finish it.
    execute(h, id="e3", attrs=f"sessionid='{sessionid}' action='complete'", body=SUBMIT)
    assert h.sent()[0][0].get("status") == "completed"


def test_a_session_expires(h):
    sessionid = start(h)
    h.clock.advance(601)
    execute(h, id="e2", attrs=f"sessionid='{sessionid}' action='complete'", body=SUBMIT)
    h.expect(f"""<iq from='{DOMAIN}' to='{ADMIN}' type='error' id='e2'>
        <command {CMD} node='urn:example:configure' sessionid='{sessionid}' action='complete'>{SUBMIT}</command>
        <error type='cancel'><not-allowed {ERR}/><text {ERR}>the session expired; execute the command again</text>
        <session-expired {CMD}/></error></iq>""")
    assert h.component.commands.sessions == 0


def test_one_user_holds_at_most_five_sessions(h):
    sessions = [start(h, id=f"s{n}") for n in range(6)]
    assert h.component.commands.sessions == 5
    execute(h, id="e1", attrs=f"sessionid='{sessions[0]}' action='complete'", body=SUBMIT)
    assert h.sent()[0].find(".//{http://jabber.org/protocol/commands}bad-sessionid") is not None
    execute(h, id="e2", attrs=f"sessionid='{sessions[5]}' action='complete'", body=SUBMIT)
    assert h.sent()[0][0].get("status") == "completed"


def test_expired_sessions_are_forgotten_when_one_starts(h):
    start(h, id="s1")
    start(h, who="requester@example.com/other", id="s2")
    h.clock.advance(601)
    start(h, id="s3")
    assert h.component.commands.sessions == 1


# -- the status command -----------------------------------------------------------------


def test_status_of_the_component(h):
    h.clock.advance(3 * 86400 + 3723)
    h.disconnect()
    h.component.send_bytes(f"<message from='{DOMAIN}' to='{ADMIN}'/>".encode())
    h.component.refused["oversized-in"] += 2
    h.clock.advance(5)
    h.connect()
    h.sent()
    h.receive(f"<iq from='{ADMIN}' to='{DOMAIN}' type='set' id='st1'>"
              f"<command {CMD} node='urn:netherfield:component#status' action='execute'/></iq>")
    h.expect(f"""<iq from='{DOMAIN}' to='{ADMIN}' type='result' id='st1'>
        <command {CMD} node='urn:netherfield:component#status' sessionid='*' status='completed'>
          <x xmlns='jabber:x:data' type='result'>
            <title>Status of responder.example.org</title>
            <field var='FORM_TYPE' type='hidden'><value>urn:netherfield:component#status</value></field>
            <field var='version' type='text-single' label='Netherfield version'><value>*</value></field>
            <field var='started' type='text-single' label='Running since'><value>1970-01-01T00:00:00Z</value></field>
            <field var='uptime' type='text-single' label='Running for'><value>3 d 01:02:08</value></field>
            <field var='link' type='text-single' label='Link to the server'><value>up</value></field>
            <field var='link-since' type='text-single' label='Link up or down since'><value>1970-01-04T01:02:08Z</value></field>
            <field var='queued' type='text-single' label='Stanzas waiting for the link'><value>0</value></field>
            <field var='queue-limit' type='text-single' label='Most stanzas that wait'><value>10000</value></field>
            <field var='dropped' type='text-single' label='Stanzas dropped from a full queue'><value>0</value></field>
            <field var='pending-iqs' type='text-single' label='IQ requests waiting for an answer'><value>0</value></field>
            <field var='refused-oversized-in' type='text-single' label='Stanzas refused: oversized-in'><value>2</value></field>
            <field var='refused-oversized-out' type='text-single' label='Stanzas refused: oversized-out'><value>0</value></field>
            <field var='refused-own-domain' type='text-single' label='Stanzas refused: own-domain'><value>0</value></field>
          </x></command></iq>""")


def test_status_shows_a_down_link_and_its_queue():
    h = Harness(DOMAIN, settings=DomainSettings(admins=frozenset({parse_jid("requester@example.com")}), queue_limit=2))
    h.disconnect()
    for _ in range(3):
        h.component.send_bytes(b"<message/>")
    form = h.result_of(defer.ensureDeferred(h.component.commands.execute(
        parse_jid(ADMIN), _command("urn:netherfield:component#status"))))[0]
    values = {f.get("var"): f[0].text for f in form if f.get("var")}
    assert (values["link"], values["queued"], values["queue-limit"], values["dropped"]) == ("down", "2", "2", "1")


def test_status_is_forbidden_to_others(h):
    h.receive(f"<iq from='{OTHER}' to='{DOMAIN}' type='set' id='st1'>"
              f"<command {CMD} node='urn:netherfield:component#status' action='execute'/></iq>")
    assert h.sent()[0].find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}forbidden") is not None


def _command(node):
    return etree.fromstring(f"<command {CMD} node='{node}' action='execute'/>")


# -- who is an admin ----------------------------------------------------------------------


class Named(Service):
    name = "named"

    def __init__(self, component, options):
        super().__init__(component, options)
        self.admins = frozenset({parse_jid("svc@example.com")})

    def samples(self):
        yield Sample("named_jobs", "counter", "Jobs done.", 3.0)
        yield Sample("named_wait", "gauge", "Seconds waited.", 1.5, (("queue", "slow"),))


def test_status_shows_what_services_count():
    h = Harness(DOMAIN, Named, settings=DomainSettings(admins=frozenset({parse_jid("requester@example.com")})))
    form = h.result_of(defer.ensureDeferred(h.component.commands.execute(
        parse_jid(ADMIN), _command("urn:netherfield:component#status"))))[0]
    fields = [etree.tostring(f, encoding="unicode") for f in form][-2:]
    assert fields == [
        '<field xmlns="jabber:x:data" var="named_jobs" type="text-single" label="Jobs done."><value>3</value></field>',
        '<field xmlns="jabber:x:data" var="named_wait{queue=slow}" type="text-single" label="Seconds waited. (queue=slow)">'
        "<value>1.5</value></field>",
    ]


def test_a_services_admins_are_the_domains_admins():
    h = Harness(DOMAIN, Named, settings=DomainSettings(admins=frozenset({parse_jid("dom@example.com/any")})))
    assert h.component.is_admin(parse_jid("svc@example.com/x"))
    assert h.component.is_admin(parse_jid("dom@example.com/y"))
    assert not h.component.is_admin(parse_jid("other@example.com/x"))


def test_admins_come_from_the_component_table(tmp_path):
    path = tmp_path / "netherfield.toml"
    path.write_text('[components."echo.localhost"]\nsecret = "s"\nservices = ["echo"]\n'
                    'admins = ["Admin@Example.org/res", "ops@example.org"]\n')
    config = load_config(path)
    assert config.components[0].admins == {parse_jid("admin@example.org"), parse_jid("ops@example.org")}
    app = Netherfield(config)
    assert app.components[0].is_admin(parse_jid("ops@example.org/laptop"))


@pytest.mark.parametrize("value, sentence", [
    ('"admin@example.org"',
     'components."echo.localhost".admins must be a list of JIDs, e.g. ["admin@example.org"], not \'admin@example.org\''),
    ("[1]", 'components."echo.localhost".admins must be a list of JIDs, e.g. ["admin@example.org"], not [1]'),
    ('["@example.org"]', 'components."echo.localhost".admins: \'@example.org\' is not a JID'),
])
def test_bad_admins_are_one_sentence(tmp_path, value, sentence):
    path = tmp_path / "netherfield.toml"
    path.write_text(f'[components."echo.localhost"]\nsecret = "s"\nservices = ["echo"]\nadmins = {value}\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == sentence
