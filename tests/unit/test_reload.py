"""Reloading the configuration: what a new file changes, and what the MUC takes without reconnecting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
from twisted.internet import task
from twisted.internet.testing import MemoryReactorClock, StringTransport

from component.app import Netherfield
from component.config import load_config
from component.errors import StanzaError
from component.jid import parse_jid
from component.options import setting
from component.reload import ReloadPlan, plan
from component.service import Service
from component.stanza import presence
from component.testing import LogCapture
from services.muc.limits import LimitSettings, MucLimits
from services.muc.testing import CRONE, HAG, ROOM, WICCA, enter, instant_room, muc_harness
from tests.unit import test_lifecycle as lifecycle

BASE = """
[server]
port = 5347
[storage]
url = "sqlite:///nf.db"
[components."echo.localhost"]
secret = "one"
services = ["echo"]
[components."conference.localhost"]
secret = "two"
services = ["muc"]
[components."conference.localhost".muc]
max_history = 20
"""


def config_of(tmp_path: Path, text: str, name: str = "nf.toml"):
    path = tmp_path / name
    path.write_text(text)
    return load_config(path)


def test_an_unchanged_file_changes_nothing(tmp_path) -> None:
    assert plan(config_of(tmp_path, BASE), config_of(tmp_path, BASE, "again.toml")) == ReloadPlan()


def test_components_added_removed_reconnected_and_reconfigured(tmp_path) -> None:
    old = config_of(tmp_path, BASE)
    new = config_of(
        tmp_path,
        BASE.replace('secret = "one"', 'secret = "changed"')
        .replace("max_history = 20", "max_history = 5")
        .replace('[components."echo.localhost"]', '[components."notices.localhost"]\nsecret = "n"\nservices = ["echo"]\n[components."echo.localhost"]'),
        "new.toml",
    )
    changes = plan(old, new)
    assert [c.domain for c in changes.added] == ["notices.localhost"]
    assert changes.removed == ()
    # Keys are named, never their values: a secret could be one.
    assert [(c.domain, names) for c, names in changes.reconnected] == [("echo.localhost", ("secret",))]
    assert [(c.domain, names) for c, names in changes.reconfigured] == [("conference.localhost", ("muc.max_history",))]
    assert "changed" not in repr(changes)

    gone = config_of(tmp_path, BASE.split('[components."conference.localhost"]')[0], "gone.toml")
    assert plan(old, gone).removed == ("conference.localhost",)


def test_server_settings_reconnect_every_component_and_storage_waits_for_a_restart(tmp_path) -> None:
    old = config_of(tmp_path, BASE)
    new = config_of(tmp_path, BASE.replace("port = 5347", "port = 5348").replace("nf.db", "other.db"), "new.toml")
    changes = plan(old, new)
    # A component's own port follows [server] unless it sets one.
    assert [(c.domain, names) for c, names in changes.reconnected] == [
        ("echo.localhost", ("server.port", "port")),
        ("conference.localhost", ("server.port", "port")),
    ]
    assert changes.not_applied == ("storage changed; restart Netherfield to apply it",)


def test_the_muc_takes_new_settings_and_keeps_its_rooms_and_counts() -> None:
    h = muc_harness({"max_rooms_per_user": 1, "max_history": 20})
    instant_room(h, ROOM, CRONE)
    [service] = h.component.services
    replacement = type(service)(h.component, {"max_rooms_per_user": 1, "max_history": 5, "admins": ["a@b"]})
    assert service.reconfigure(replacement)
    assert service.settings.max_history == 5
    assert {str(jid) for jid in service.admins} == {"a@b"}
    assert service.limits.settings.max_rooms_per_user == 1
    # The room is still there, and it still counts against its creator.
    assert h.component.router.loaded("coven") is not None
    enter(h, "other@chat.shakespeare.lit", "owner", CRONE)
    assert h.component.router.loaded("other") is None


# -- applying a reload to a running application --------------------------------------

TUNABLE = "tests.unit.test_reload:Tunable"
SERVER_HEADER = (
    "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
    "xmlns='jabber:component:accept' from='{domain}' id='3BF96D32'>"
)
GOODBYE = (
    b'<presence from="bot@{domain}" to="juliet@example.com" type="unavailable"/>'
    b"</stream:stream>"
)


@attrs.frozen
class TunableSettings:
    level: int = setting(1, "how much")
    fixed: int = setting(0, "what needs a new connection")


class Tunable(Service):
    """Takes a new ``level`` while running; a new ``fixed`` needs a new connection."""

    name = "tunable"
    settings_class = TunableSettings

    def __init__(self, component, options):
        super().__init__(component, options)
        self.level = self.settings.level
        #: What the application did with this instance, in order.
        self.calls: list[str] = []

    def start(self):
        self.calls.append("start")

    def stop(self):
        self.calls.append("stop")

    def reconfigure(self, replacement):
        if replacement.options.get("fixed") != self.options.get("fixed"):
            self.calls.append("refused")
            return False
        self.calls.append(f"level {replacement.level}")
        self.level = replacement.level
        return True


def tunable(domain: str, secret: str = "s", **options: object) -> str:
    table = "".join(f"{key} = {value!r}\n".replace("'", '"') for key, value in options.items())
    return (f'[components."{domain}"]\nsecret = "{secret}"\nservices = ["{TUNABLE}"]\n'
            f'[components."{domain}"."{TUNABLE}"]\n{table}')


class Running:
    """A Netherfield on a memory reactor, every connection attached over a StringTransport."""

    def __init__(self, tmp_path: Path, text: str) -> None:
        self.path = tmp_path / "netherfield.toml"
        self.path.write_text(text)
        self.reactor = MemoryReactorClock()
        self.app = Netherfield(load_config(self.path), self.reactor, path=str(self.path))
        #: Each connection, by domain: (protocol, transport).
        self.links: dict[str, tuple[Any, StringTransport]] = {}
        self.answered = 0
        self.app.startService()
        self.attach_new()

    def attach_new(self) -> None:
        """Complete the handshake of every connection attempt not yet answered."""
        for _host, _port, factory, _timeout, _bind in self.reactor.tcpClients[self.answered:]:
            wrapper = factory.buildProtocol(None)
            protocol = wrapper._wrappedProtocol  # inside the endpoint's wrapper
            transport = StringTransport()
            wrapper.makeConnection(transport)
            wrapper.dataReceived((SERVER_HEADER.format(domain=protocol.domain) + "<handshake/>").encode())
            transport.clear()
            self.links[protocol.domain] = (protocol, transport)
            self.answered += 1

    def service(self, domain: str) -> Tunable:
        [service] = self.app._component(domain).services
        return service

    def reload(self, text: str) -> list[Any]:
        """Write the file, reload, answer the server side of any stream closed meanwhile."""
        self.path.write_text(text)
        done = fired(self.app.reload())
        for _ in range(10):
            self.close_closed_streams()
        self.attach_new()
        return done

    def close_closed_streams(self) -> None:
        """Play the server answering our ``</stream:stream>`` by closing the connection."""
        for protocol, transport in self.links.values():
            if transport.value().endswith(b"</stream:stream>") and not protocol.disconnected.called:
                protocol.connectionLost(None)
        self.reactor.advance(0)

    def domains(self) -> list[str]:
        return [str(component.jid) for component in self.app.components]


def fired(deferred):
    outcome: list[Any] = []
    deferred.addBoth(outcome.append)
    return outcome


def test_a_reload_attaches_added_components_and_detaches_removed_ones_as_on_shutdown(tmp_path) -> None:
    running = Running(tmp_path, tunable("a.localhost") + tunable("b.localhost"))
    old_b = running.service("b.localhost")
    b_transport = running.links["b.localhost"][1]
    running.app._component("b.localhost").send_presence(presence("bot@b.localhost", "juliet@example.com"))
    b_transport.clear()
    with LogCapture() as logs:
        done = running.reload(tunable("a.localhost") + tunable("c.localhost"))
    assert done == [None]
    # b said goodbye, closed its stream, and then its service stopped.
    assert b_transport.value() == GOODBYE.replace(b"{domain}", b"b.localhost")
    assert old_b.calls == ["start", "stop"]
    assert running.domains() == ["a.localhost", "c.localhost"]
    assert running.service("c.localhost").calls == ["start"]
    assert running.links["c.localhost"][0].authenticated
    # a was not touched.
    assert running.service("a.localhost").calls == ["start"]
    assert running.links["a.localhost"][1].value() == b""
    assert [m for m in logs.messages() if m.startswith("reload:")] == [
        "reload: b.localhost detached",
        "reload: c.localhost added",
    ]
    assert [c.domain for c in running.app.config.components] == ["a.localhost", "c.localhost"]


def test_settings_a_service_takes_apply_without_reconnecting(tmp_path) -> None:
    running = Running(tmp_path, tunable("a.localhost", level=1))
    service = running.service("a.localhost")
    with LogCapture() as logs:
        running.reload(tunable("a.localhost", level=7))
    assert running.service("a.localhost") is service
    assert (service.calls, service.level, service.options) == (["start", "level 7"], 7, {"level": 7})
    assert running.links["a.localhost"][1].value() == b""
    assert len(running.reactor.tcpClients) == 1
    assert "reload: a.localhost: tests.unit.test_reload:Tunable.level changed, applied without reconnecting" in (
        logs.messages()
    )


def test_settings_a_service_cannot_take_and_a_new_secret_reconnect_the_component(tmp_path) -> None:
    running = Running(tmp_path, tunable("a.localhost", fixed=1) + tunable("b.localhost", secret="old-secret"))
    old_a, old_b = running.service("a.localhost"), running.service("b.localhost")
    with LogCapture() as logs:
        running.reload(tunable("a.localhost", fixed=2) + tunable("b.localhost", secret="new-secret"))
    assert old_a.calls == ["start", "refused", "stop"]
    assert old_b.calls == ["start", "stop"]
    # New components, with new services, on new connections.
    assert running.service("a.localhost").calls == running.service("b.localhost").calls == ["start"]
    assert len(running.reactor.tcpClients) == 4
    assert all(running.links[d][0].authenticated for d in ("a.localhost", "b.localhost"))
    lines = [m for m in logs.messages() if m.startswith("reload:")]
    assert lines == [
        "reload: a.localhost reconnects (tests.unit.test_reload:Tunable.fixed changed; tunable cannot apply them"
        " while running)",
        "reload: b.localhost reconnects (secret changed)",
    ]
    assert not any("old-secret" in m or "new-secret" in m for m in logs.messages())


def test_a_file_with_a_mistake_is_refused_and_everything_keeps_running(tmp_path) -> None:
    running = Running(tmp_path, tunable("a.localhost"))
    service = running.service("a.localhost")
    level = 'components."a.localhost"."tests.unit.test_reload:Tunable".level must be a whole number, not \'high\''
    nonsense = "nonsense is not a setting Netherfield knows"
    for broken, sentences in [
        (tunable("a.localhost") + "[nonsense]\n", [nonsense]),
        (tunable("a.localhost", level="high"), [level]),
        ("[server]\nport = 0\n" + tunable("a.localhost") + "[nonsense]\n",
         ["server.port must be a TCP port number, not 0", nonsense]),
        (tunable("a.localhost") + '[components."b.localhost"]\nsecret = "s"\nservices = ["nothing_here:Bot"]\n',
         ["there is no service called 'nothing_here:Bot': no module nothing_here on the Python path or in"
          f" {tmp_path}"]),
    ]:
        with LogCapture() as logs:
            assert running.reload(broken) == [None]
        assert [m for m in logs.messages() if m.startswith("reload:")] == [
            f"reload: the new configuration is refused, the running one stays: {sentence}" for sentence in sentences
        ]
        assert running.domains() == ["a.localhost"]
        assert running.service("a.localhost") is service and service.calls == ["start"]
        assert running.links["a.localhost"][1].value() == b""
    # The running configuration is still the one before: the same file again changes nothing.
    with LogCapture() as logs:
        running.reload(tunable("a.localhost"))
    assert [m for m in logs.messages() if m.startswith("reload:")] == ["reload: nothing to change"]


def test_storage_changes_wait_for_a_restart(tmp_path) -> None:
    running = Running(tmp_path, tunable("a.localhost"))
    with LogCapture() as logs:
        running.reload('[storage]\nurl = "sqlite:///elsewhere.db"\n' + tunable("a.localhost"))
        running.reload('[storage]\nurl = "sqlite:///elsewhere.db"\n' + tunable("a.localhost"))
    # Not applied, so said again at the next reload.
    assert [m for m in logs.messages() if m.startswith("reload:")] == [
        "reload: storage changed; restart Netherfield to apply it",
        "reload: nothing to change",
    ] * 2
    assert running.service("a.localhost").calls == ["start"]


def test_reloads_asked_for_during_one_make_one_more_that_reads_the_file_then(tmp_path) -> None:
    running = Running(tmp_path, tunable("a.localhost") + tunable("b.localhost"))
    with LogCapture() as logs:
        # Removing b waits for the server to close b's stream: the reload is in progress meanwhile.
        running.path.write_text(tunable("a.localhost"))
        first = fired(running.app.reload())
        second = fired(running.app.reload())
        third = fired(running.app.reload())
        running.path.write_text(tunable("a.localhost") + tunable("c.localhost"))
        assert (first, second, third) == ([], [], [])
        running.close_closed_streams()
    assert first == second == third == [None]
    running.attach_new()
    assert running.domains() == ["a.localhost", "c.localhost"]
    assert [m for m in logs.messages() if m.startswith("reload:")] == [
        "reload: one is in progress; this one follows it",
        "reload: one is in progress and another follows it; this one is the same",
        "reload: b.localhost detached",
        "reload: c.localhost added",
    ]


def test_a_reload_during_the_start_waits_for_it_and_one_while_stopping_is_skipped(tmp_path) -> None:
    path = tmp_path / "netherfield.toml"
    path.write_text(tunable("a.localhost").replace(f'["{TUNABLE}"]', f'["{TUNABLE}", "tests.unit.test_lifecycle:Slow"]'))
    reactor = MemoryReactorClock()
    app = Netherfield(load_config(path), reactor, path=str(path))
    lifecycle.setup_function()
    app.startService()
    path.write_text(tunable("a.localhost") + tunable("b.localhost"))
    with LogCapture() as logs:
        done = fired(app.reload())
        assert done == [] and len(reactor.tcpClients) == 0
        lifecycle.GATE[0].callback(None)
    assert done == [None]
    # The start attached a, then the reload reconnected it (its services changed) and added b.
    assert sorted(str(c.jid) for c in app.components) == ["a.localhost", "b.localhost"]
    assert [m for m in logs.messages() if m.startswith("reload:")] == [
        "reload: waiting for the start to finish",
        "reload: a.localhost reconnects (services changed)",
        "reload: b.localhost added",
    ]
    stopped = fired(app.stopService())
    with LogCapture() as logs:
        assert fired(app.reload()) == [None]
    assert [m for m in logs.messages() if m.startswith("reload:")] == ["reload: skipped, Netherfield is stopping"]
    reactor.advance(5)
    assert stopped == [None]


def test_a_component_whose_service_fails_to_start_stays_out_and_is_tried_again(tmp_path) -> None:
    running = Running(tmp_path, tunable("a.localhost"))
    (tmp_path / "failing.py").write_text(
        "from component.service import Service\n\n"
        "class Failing(Service):\n"
        "    name = 'failing'\n\n"
        "    def start(self):\n"
        "        raise RuntimeError('the widget is missing')\n"
    )
    broken = tunable("a.localhost") + tunable("b.localhost").replace(f'["{TUNABLE}"]', f'["{TUNABLE}", "failing:Failing"]')
    with LogCapture() as logs:
        assert running.reload(broken) == [None]
        assert running.domains() == ["a.localhost"]
        running.reload(broken)
    lines = [m for m in logs.messages() if m.startswith("reload:")]
    sentence = ("reload: b.localhost is not attached: the failing service of b.localhost failed to start with"
                " RuntimeError: the widget is missing (the traceback is in the log)")
    assert lines == [sentence, sentence]
    assert len(running.reactor.tcpClients) == 1
    assert running.app.failure is None and running.app.running


def test_stopping_during_a_reload_waits_for_it_and_it_attaches_nothing_more(tmp_path) -> None:
    running = Running(tmp_path, tunable("a.localhost") + tunable("b.localhost"))
    old_a, old_b = running.service("a.localhost"), running.service("b.localhost")
    running.path.write_text(tunable("a.localhost") + tunable("c.localhost"))
    reloaded = fired(running.app.reload())
    # b's detach waits for the server to close b's stream; Netherfield stops meanwhile.
    stopped = fired(running.app.stopService())
    assert (reloaded, stopped) == ([], [])
    running.close_closed_streams()
    running.close_closed_streams()
    assert reloaded == stopped == [None]
    # c never started nor connected; a and b stopped once each.
    assert len(running.reactor.tcpClients) == 2
    assert running.domains() == ["a.localhost"]
    assert (old_a.calls, old_b.calls) == (["start", "stop"], ["start", "stop"])


def test_the_muc_limits_keep_what_they_counted_under_new_settings() -> None:
    clock = task.Clock()
    crone = parse_jid(CRONE)
    old = MucLimits(LimitSettings(groupchat_burst=2, groupchat_rate=0.0, max_pending_iqs=1), clock.seconds,
                    lambda jid: False)
    old.check_groupchat("coven", crone)
    old.check_groupchat("coven", crone)
    asked = old.start_iq("coven", crone)
    new = MucLimits(LimitSettings(groupchat_burst=3, groupchat_rate=0.0, max_pending_iqs=2), clock.seconds,
                    lambda jid: False)
    new.carry_over(old)
    # The bucket emptied before the reload stays empty: a reload hands out nothing.
    with pytest.raises(StanzaError, match="policy-violation"):
        new.check_groupchat("coven", crone)
    # One IQ was waiting: the new limit of 2 leaves room for one more.
    new.start_iq("coven", crone)
    with pytest.raises(StanzaError, match="resource-constraint"):
        new.start_iq("coven", crone)
    # The answer to the IQ asked before the reload counts off the same count.
    old.end_iq(None, asked)
    new.start_iq("coven", crone)


def test_the_muc_remembers_invitations_across_a_reload_within_the_new_bound() -> None:
    clock = task.Clock()
    crone, wicca, hag, witch = (parse_jid(j) for j in (CRONE, WICCA, HAG, "witch@shakespeare.lit"))
    old = MucLimits(LimitSettings(max_pending_invitations=10), clock.seconds, lambda jid: False)
    old.invited("coven", wicca, crone)
    old.invited("coven", hag, crone)
    new = MucLimits(LimitSettings(max_pending_invitations=1), clock.seconds, lambda jid: False)
    new.carry_over(old)
    new.check_decline("coven", hag, crone, occupant=False)
    # The next invitation brings them within the new bound: the oldest is forgotten.
    new.invited("coven", witch, crone)
    with pytest.raises(StanzaError, match="not-acceptable"):
        new.check_decline("coven", wicca, crone, occupant=False)
    new.check_decline("coven", witch, crone, occupant=False)
