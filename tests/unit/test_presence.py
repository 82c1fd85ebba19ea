"""Entities that keep their own roster and presence: exact stanzas in, exact stanzas out.

Most tests run the notices service (bots that approve everyone and follow
them back) or a plain ``Desk`` entity whose policy each test sets; the
persistence tests run them on a SQLite file and build a second harness on
it, as a restarted process would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import pytest_twisted
from lxml import etree
from twisted.internet import defer

from component.config import ConfigError
from component.jid import JID, parse_jid
from component.options import setting
from component.presence import PresenceEntity, PresenceInfo
from component.roster import Roster
from component.service import Service
from component.storage import Storage, open_storage
from component.storage.rosters import ROSTER_MIGRATIONS, RosterStore
from component.subscription import Subscription
from component.testing import Harness
from services.notices import NoticesBot, NoticesService

D = "notices.example.org"
NEWS = f"news@{D}"
DESK = f"desk@{D}"
JULIET = "juliet@example.com"
ROMEO = "romeo@example.net"
EDITOR = "editor@example.org"
CAPS = "http://jabber.org/protocol/caps"

NOTICES = {
    "bots": {"news": {"name": "News", "status": "Hot off the press"}, "weather": {"name": "Weather", "show": "away"}},
    "admins": [EDITOR],
}


def notices(**options: Any) -> Harness:
    return Harness(D, (NoticesService, {**NOTICES, **options}))


def bot(harness: Harness, node: str = "news") -> Any:
    found = harness.component.router.loaded(node)
    assert found is not None
    return found


def subscribed_both(harness: Harness, user: str = JULIET) -> None:
    """Take ``user`` and news@ to ``both``, and drop what was sent on the way."""
    harness.receive(f"<presence from='{user}' to='{NEWS}' type='subscribe'/>")
    harness.receive(f"<presence from='{user}' to='{NEWS}' type='subscribed'/>")
    harness.sent()


# -- subscribing -------------------------------------------------------------------


def test_connecting_announces_nothing_to_an_empty_roster() -> None:
    harness = notices()
    harness.expect_nothing()


def test_a_user_subscribes_and_both_sides_end_in_both() -> None:
    harness = notices()
    harness.receive(f"<presence from='{JULIET}' to='{NEWS}' type='subscribe' id='s1'><status>hi</status></presence>")
    # §3.1.5: approval, then the bot's current presence; then the bot follows back.
    harness.expect(
        f"<presence from='{NEWS}' to='{JULIET}' type='subscribed'/>",
        f"<presence from='{NEWS}' to='{JULIET}'><status>Hot off the press</status></presence>",
        f"<presence from='{NEWS}' to='{JULIET}' type='subscribe'/>",
    )
    assert bot(harness).roster.state(parse_jid(JULIET)) == Subscription("from", pending_out=True)
    harness.receive(f"<presence from='{JULIET}' to='{NEWS}' type='subscribed'/>")
    harness.expect_nothing()
    assert bot(harness).roster[parse_jid(JULIET)].subscription == "both"
    assert bot(harness).roster.subscribers() == [parse_jid(JULIET)]


def test_subscription_stanzas_from_a_full_jid_count_for_the_bare_jid() -> None:
    harness = notices()
    harness.receive(f"<presence from='{JULIET}/balcony' to='{NEWS}/x' type='subscribe'/>")
    sent = harness.sent()
    assert {element.get("to") for element in sent} == {JULIET}
    assert list(bot(harness).roster) == [parse_jid(JULIET)]


def test_subscribing_again_when_subscribed_gets_an_automatic_subscribed() -> None:
    harness = notices()
    subscribed_both(harness)
    harness.receive(f"<presence from='{JULIET}' to='{NEWS}' type='subscribe'/>")
    # A.3.1 "Both": not delivered; the server answers for the bot.
    harness.expect(
        f"<presence from='{NEWS}' to='{JULIET}' type='subscribed'/>",
        f"<presence from='{NEWS}' to='{JULIET}'><status>Hot off the press</status></presence>",
    )


def test_stray_answers_change_nothing_and_send_nothing() -> None:
    harness = notices()
    for kind in ("subscribed", "unsubscribed", "unsubscribe"):
        harness.receive(f"<presence from='{ROMEO}' to='{NEWS}' type='{kind}'/>")
    harness.expect_nothing()
    assert len(bot(harness).roster) == 0


def test_a_user_who_unsubscribes_is_dropped_both_ways() -> None:
    harness = notices()
    subscribed_both(harness)
    harness.receive(f"<presence from='{JULIET}/balcony' to='{NEWS}'/>")
    harness.receive(f"<presence from='{JULIET}' to='{NEWS}' type='unsubscribe'/>")
    # §3.3.3: unavailable to the former subscriber; then the bot drops its side.
    harness.expect(
        f"<presence from='{NEWS}' to='{JULIET}' type='unavailable'/>",
        f"<presence from='{NEWS}' to='{JULIET}' type='unsubscribe'/>",
    )
    assert len(bot(harness).roster) == 0
    assert bot(harness).resources_of(parse_jid(JULIET)) == {}
    # The user's client answers the bot's unsubscribe; that is A.3.4 "None" now.
    harness.receive(f"<presence from='{JULIET}' to='{NEWS}' type='unsubscribed'/>")
    harness.expect_nothing()


def test_a_user_who_removes_the_bot_leaves_no_trace() -> None:
    harness = notices()
    subscribed_both(harness)
    # A roster remove on the user's server sends both (RFC 6121 §2.5.2).
    harness.receive(
        f"<presence from='{JULIET}' to='{NEWS}' type='unsubscribe'/>"
        f"<presence from='{JULIET}' to='{NEWS}' type='unsubscribed'/>"
    )
    harness.expect(
        f"<presence from='{NEWS}' to='{JULIET}' type='unavailable'/>",
        f"<presence from='{NEWS}' to='{JULIET}' type='unsubscribe'/>",
    )
    assert len(bot(harness).roster) == 0


def test_a_user_who_refuses_the_bot_stays_subscribed_and_is_not_asked_again() -> None:
    harness = notices()
    harness.receive(f"<presence from='{JULIET}' to='{NEWS}' type='subscribe'/>")
    harness.sent()
    harness.receive(f"<presence from='{JULIET}' to='{NEWS}' type='unsubscribed'/>")
    harness.expect_nothing()
    assert bot(harness).roster.state(parse_jid(JULIET)) == Subscription("from")


def test_an_admin_removes_a_subscriber_both_ways() -> None:
    harness = notices()
    subscribed_both(harness)
    harness.receive(f"<message from='{EDITOR}/desk' to='{NEWS}' type='chat'><body>!remove {JULIET}</body></message>")
    # §3.2.2: unavailable before the subscription is cancelled.
    harness.expect(
        f"<presence from='{NEWS}' to='{JULIET}' type='unavailable'/>",
        f"<presence from='{NEWS}' to='{JULIET}' type='unsubscribe'/>",
        f"<presence from='{NEWS}' to='{JULIET}' type='unsubscribed'/>",
        f"<message from='{NEWS}' to='{EDITOR}/desk' type='chat'><body>Removed {JULIET}.</body></message>",
    )
    assert len(bot(harness).roster) == 0
    harness.receive(f"<message from='{EDITOR}/desk' to='{NEWS}' type='chat'><body>!remove {JULIET}</body></message>")
    harness.expect(
        f"<message from='{NEWS}' to='{EDITOR}/desk' type='chat'><body>{JULIET} is not on my roster.</body></message>"
    )


# -- probes ------------------------------------------------------------------------


def test_probes_from_a_subscriber_get_the_presence_at_the_probing_resource() -> None:
    harness = notices()
    subscribed_both(harness)
    harness.receive(f"<presence from='{JULIET}/balcony' to='{NEWS}' type='probe'/>")
    harness.expect(f"<presence from='{NEWS}' to='{JULIET}/balcony'><status>Hot off the press</status></presence>")


def test_probes_from_strangers_get_unsubscribed_and_no_presence() -> None:
    harness = notices()
    harness.receive(f"<presence from='{ROMEO}/orchard' to='{NEWS}' type='probe'/>")
    harness.expect(f"<presence from='{NEWS}' to='{ROMEO}' type='unsubscribed'/>")
    # Asking is not being subscribed either.
    desk = desk_harness("ask")
    desk.receive(f"<presence from='{ROMEO}' to='{DESK}' type='subscribe'/>")
    desk.receive(f"<presence from='{ROMEO}/orchard' to='{DESK}' type='probe'/>")
    desk.expect(f"<presence from='{DESK}' to='{ROMEO}' type='unsubscribed'/>")


def test_probes_while_offline_get_unavailable() -> None:
    harness = notices()
    subscribed_both(harness)
    bot(harness).go_offline()
    harness.expect(f"<presence from='{NEWS}' to='{JULIET}' type='unavailable'/>")
    harness.receive(f"<presence from='{JULIET}/balcony' to='{NEWS}' type='probe'/>")
    harness.expect(f"<presence from='{NEWS}' to='{JULIET}/balcony' type='unavailable'/>")


# -- the entity's own presence -----------------------------------------------------


def test_presence_goes_to_from_and_both_contacts_with_its_payload() -> None:
    harness = desk_harness("approve")
    desk = bot(harness, "desk")
    # juliet: from; romeo: both; nurse: to only; friar: asked, not answered.
    harness.receive(f"<presence from='{JULIET}' to='{DESK}' type='subscribe'/>")
    harness.receive(f"<presence from='{ROMEO}' to='{DESK}' type='subscribe'/>")
    desk.subscribe(parse_jid(ROMEO))
    harness.receive(f"<presence from='{ROMEO}' to='{DESK}' type='subscribed'/>")
    desk.subscribe(parse_jid("nurse@example.com"))
    harness.receive(f"<presence from='nurse@example.com' to='{DESK}' type='subscribed'/>")
    desk.policy = "ask"
    harness.receive(f"<presence from='friar@example.com' to='{DESK}' type='subscribe'/>")
    harness.sent()
    caps = etree.Element(f"{{{CAPS}}}c", {"hash": "sha-1", "node": "urn:example", "ver": "abc="}, nsmap={None: CAPS})
    desk.set_presence(show="dnd", status="Busy", priority=5, payload=[caps])
    harness.expect(
        f"<presence from='{DESK}' to='{JULIET}'><show>dnd</show><status>Busy</status><priority>5</priority>"
        f"<c xmlns='{CAPS}' hash='sha-1' node='urn:example' ver='abc='/></presence>",
        f"<presence from='{DESK}' to='{ROMEO}'><show>dnd</show><status>Busy</status><priority>5</priority>"
        f"<c xmlns='{CAPS}' hash='sha-1' node='urn:example' ver='abc='/></presence>",
    )
    harness.receive(f"<presence from='{ROMEO}/orchard' to='{DESK}' type='probe'/>")
    harness.expect(
        f"<presence from='{DESK}' to='{ROMEO}/orchard'><show>dnd</show><status>Busy</status><priority>5</priority>"
        f"<c xmlns='{CAPS}' hash='sha-1' node='urn:example' ver='abc='/></presence>"
    )
    assert desk.presence == PresenceInfo("dnd", "Busy", 5)
    with pytest.raises(ValueError):
        desk.set_presence(show="busy")
    with pytest.raises(ValueError):
        desk.set_presence(priority=200)


def test_unavailable_reaches_everyone_who_saw_available_once_each() -> None:
    harness = notices()
    news = bot(harness)
    subscribed_both(harness)
    harness.receive(f"<presence from='{JULIET}/balcony' to='{NEWS}' type='probe'/>")
    news.send_directed_presence(parse_jid(f"{ROMEO}/orchard"))
    harness.expect(
        f"<presence from='{NEWS}' to='{JULIET}/balcony'><status>Hot off the press</status></presence>",
        f"<presence from='{NEWS}' to='{ROMEO}/orchard'><status>Hot off the press</status></presence>",
    )
    news.go_offline(status="Gone fishing")
    # juliet's bare JID covers her resource; romeo only had directed presence.
    harness.expect(
        f"<presence from='{NEWS}' to='{JULIET}' type='unavailable'><status>Gone fishing</status></presence>",
        f"<presence from='{NEWS}' to='{ROMEO}/orchard' type='unavailable'><status>Gone fishing</status></presence>",
    )
    assert news.presence is None
    news.go_offline()
    harness.expect_nothing()


def test_a_directed_presence_recipient_may_probe() -> None:
    harness = notices()
    bot(harness).send_directed_presence(parse_jid(f"{ROMEO}/orchard"))
    harness.sent()
    harness.receive(f"<presence from='{ROMEO}/orchard' to='{NEWS}' type='probe'/>")
    harness.expect(f"<presence from='{NEWS}' to='{ROMEO}/orchard'><status>Hot off the press</status></presence>")


def test_clean_shutdown_says_unavailable_to_all_who_saw_the_bots() -> None:
    harness = notices()
    subscribed_both(harness)
    harness.receive(f"<presence from='{JULIET}/balcony' to='{NEWS}' type='probe'/>")
    harness.receive(f"<presence from='{ROMEO}' to='weather@{D}' type='subscribe'/>")
    harness.sent()
    harness.component.say_goodbye()
    harness.expect_unordered(
        f"<presence from='{NEWS}' to='{JULIET}' type='unavailable'/>",
        f"<presence from='weather@{D}' to='{ROMEO}' type='unavailable'/>",
    )
    assert not harness.component.directed


def test_an_offline_resource_is_not_told_again() -> None:
    harness = notices()
    news = bot(harness)
    news.send_directed_presence(parse_jid(f"{ROMEO}/orchard"))
    harness.receive(f"<presence from='{ROMEO}/orchard' to='{NEWS}' type='unavailable'/>")
    harness.sent()
    news.go_offline()
    harness.expect_nothing()


# -- contacts' presence ------------------------------------------------------------


def test_contacts_resources_are_tracked_with_show_status_and_priority() -> None:
    harness = desk_harness("approve")
    desk = bot(harness, "desk")
    harness.receive(f"<presence from='{JULIET}' to='{DESK}' type='subscribe'/>")
    desk.subscribe(parse_jid(JULIET))
    harness.receive(f"<presence from='{JULIET}' to='{DESK}' type='subscribed'/>")
    harness.sent()
    juliet = parse_jid(JULIET)
    harness.receive(
        f"<presence from='{JULIET}/balcony' to='{DESK}'><show>away</show><status>Sighing</status>"
        "<priority>3</priority><c xmlns='http://jabber.org/protocol/caps' ver='x'/></presence>"
        f"<presence from='{JULIET}/chamber' to='{DESK}'><show>bogus</show><priority>x</priority></presence>"
        f"<presence from='{ROMEO}/orchard' to='{DESK}'/>"
    )
    balcony = desk.resources_of(juliet)["balcony"]
    assert (balcony.show, balcony.status, balcony.priority) == ("away", "Sighing", 3)
    assert [etree.QName(p).localname for p in balcony.payload] == ["c"]
    assert desk.resources_of(parse_jid(f"{JULIET}/anything"))["chamber"] == PresenceInfo()
    assert desk.resources_of(parse_jid(ROMEO)) == {}  # not on the roster
    harness.receive(f"<presence from='{JULIET}/balcony' to='{DESK}' type='unavailable'/>")
    assert list(desk.resources_of(juliet)) == ["chamber"]
    harness.receive(
        f"<presence from='{JULIET}/chamber' to='{DESK}' type='error'>"
        "<error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
        "</presence>"
    )
    assert desk.resources_of(juliet) == {}
    harness.receive(f"<presence from='{JULIET}/a' to='{DESK}'/><presence from='{JULIET}/b' to='{DESK}'/>")
    harness.receive(f"<presence from='{JULIET}' to='{DESK}' type='unavailable'/>")
    assert desk.resources_of(juliet) == {}
    harness.expect_nothing()
    assert desk.seen == [
        (f"{JULIET}/balcony", "away"),
        (f"{JULIET}/chamber", None),
        (f"{JULIET}/balcony", "offline"),
        (f"{JULIET}/chamber", "offline"),
        (f"{JULIET}/a", None),
        (f"{JULIET}/b", None),
        (f"{JULIET}/a", "offline"),
        (f"{JULIET}/b", "offline"),
    ]


def test_losing_a_subscription_forgets_the_contacts_resources() -> None:
    harness = notices()
    subscribed_both(harness)
    harness.receive(f"<presence from='{JULIET}/balcony' to='{NEWS}'/>")
    assert list(bot(harness).resources_of(parse_jid(JULIET))) == ["balcony"]
    # §3.2.3: juliet cancels the bot's subscription to her.
    harness.receive(f"<presence from='{JULIET}' to='{NEWS}' type='unsubscribed'/>")
    assert bot(harness).resources_of(parse_jid(JULIET)) == {}
    assert bot(harness).roster.state(parse_jid(JULIET)) == Subscription("from")


def test_an_unknown_presence_type_is_a_bad_request() -> None:
    harness = notices()
    harness.receive(f"<presence from='{JULIET}/balcony' to='{NEWS}' type='invisible' id='p1'/>")
    harness.expect(
        f"<presence from='{NEWS}' to='{JULIET}/balcony' type='error' id='p1'><error type='modify'>"
        "<bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>unknown presence type invisible</text></error></presence>"
    )


# -- (re)connecting ----------------------------------------------------------------


def test_after_a_reconnect_presence_is_announced_and_contacts_probed() -> None:
    harness = notices()
    subscribed_both(harness)
    harness.receive(f"<presence from='{ROMEO}' to='weather@{D}' type='subscribe'/>")
    harness.receive(f"<presence from='{JULIET}/balcony' to='{NEWS}'/>")
    harness.sent()
    harness.disconnect()
    bot(harness).set_presence(status="Back soon")  # not queued: the handshake announces it
    harness.connect()
    # weather@ still waits for romeo's answer to its own request: it asks again.
    harness.expect_unordered(
        f"<presence from='{NEWS}' to='{JULIET}'><status>Back soon</status></presence>",
        f"<presence from='{NEWS}' to='{JULIET}' type='probe'/>",
        f"<presence from='weather@{D}' to='{ROMEO}'><show>away</show></presence>",
        f"<presence from='weather@{D}' to='{ROMEO}' type='subscribe'/>",
    )
    # What was online before the link dropped is unknown until the probes are answered.
    assert bot(harness).resources_of(parse_jid(JULIET)) == {}


def test_stanzas_sent_while_disconnected_wait_for_the_link() -> None:
    harness = notices()
    subscribed_both(harness)
    harness.disconnect()
    bot(harness).subscribe(parse_jid(ROMEO))
    bot(harness).go_offline()
    harness.connect()
    # Queued in order, flushed at the handshake; then probes and the repeated request
    # (offline: no announcement).
    harness.expect(
        f"<presence from='{NEWS}' to='{ROMEO}' type='subscribe'/>",
        f"<presence from='{NEWS}' to='{JULIET}' type='unavailable'/>",
        f"<presence from='{NEWS}' to='{JULIET}' type='probe'/>",
        f"<presence from='{NEWS}' to='{ROMEO}' type='subscribe'/>",
    )


# -- policies ----------------------------------------------------------------------


class Desk(PresenceEntity):
    """A plain entity whose answers the tests choose."""

    def __init__(self, component: Any, jid: JID, roster: Roster | None = None) -> None:
        super().__init__(component, jid, roster)
        self.asked: list[str] = []
        self.answer: Any = None
        self.changes: list[tuple[str, str, str]] = []
        self.seen: list[tuple[str, str | None]] = []

    def on_subscription_request(self, jid: JID) -> Any:
        self.asked.append(str(jid))
        return self.answer

    def on_subscription_changed(self, jid: JID, old: Subscription, new: Subscription) -> None:
        self.changes.append((str(jid), str(old), str(new)))

    def on_contact_presence(self, jid: JID, info: PresenceInfo | None) -> None:
        self.seen.append((str(jid), "offline" if info is None else info.show))


@attrs.frozen
class DeskSettings:
    policy: str = setting("ask", "what the desk does with a subscription request", choices=("ask", "deny", "approve"))


class DeskService(Service):
    name = "desk"
    settings_class = DeskSettings
    migrations = (ROSTER_MIGRATIONS,)

    def start(self, storage: Storage | None = None) -> defer.Deferred[None]:
        return defer.Deferred.fromCoroutine(self._start(storage))

    async def _start(self, storage: Storage | None) -> None:
        jid = parse_jid(DESK)
        roster = await Roster.load(jid, RosterStore(storage) if storage is not None else None)
        self.desk = Desk(self.component, jid, roster)
        self.desk.policy = self.settings.policy
        self.desk.set_presence(status="Open")
        self.component.router.register(self.desk)


def desk_harness(policy: str) -> Harness:
    return Harness(D, (DeskService, {"policy": policy}))


def test_deny_policy_refuses_at_once() -> None:
    harness = desk_harness("deny")
    harness.receive(f"<presence from='{ROMEO}' to='{DESK}' type='subscribe'/>")
    harness.expect(f"<presence from='{DESK}' to='{ROMEO}' type='unsubscribed'/>")
    assert len(bot(harness, "desk").roster) == 0


def test_ask_policy_waits_for_the_entity_code() -> None:
    harness = desk_harness("ask")
    desk = bot(harness, "desk")
    harness.receive(f"<presence from='{ROMEO}' to='{DESK}' type='subscribe'/>")
    harness.expect_nothing()
    assert desk.asked == [ROMEO]
    assert desk.roster.requests() == [parse_jid(ROMEO)]
    # A second request while the first is pending is not delivered again (A.3.1).
    harness.receive(f"<presence from='{ROMEO}' to='{DESK}' type='subscribe'/>")
    assert desk.asked == [ROMEO]
    desk.approve(parse_jid(ROMEO))
    harness.expect(
        f"<presence from='{DESK}' to='{ROMEO}' type='subscribed'/>",
        f"<presence from='{DESK}' to='{ROMEO}'><status>Open</status></presence>",
    )
    assert desk.changes == [(ROMEO, "None", "None + Pending In"), (ROMEO, "None + Pending In", "From")]
    # Approving what nobody asked for sends nothing: no pre-approval (A.2.3 "None").
    desk.approve(parse_jid(JULIET))
    harness.expect_nothing()


def test_requests_from_strangers_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from component import presence as presence_module

    monkeypatch.setattr(presence_module, "MAX_PENDING_REQUESTS", 3)
    harness = desk_harness("ask")
    desk = bot(harness, "desk")
    for n in range(3):
        harness.receive(f"<presence from='stranger{n}@example.net' to='{DESK}' type='subscribe'/>")
    harness.expect_nothing()
    harness.receive(f"<presence from='stranger9@example.net' to='{DESK}' type='subscribe' id='s9'/>")
    harness.expect(
        f"<presence from='{DESK}' to='stranger9@example.net' type='error' id='s9'>"
        "<error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>too many subscription requests are waiting</text>"
        "</error></presence>"
    )
    assert len(desk.roster.requests()) == 3
    huge = "x" * 10000
    desk.approve(parse_jid("stranger0@example.net"))
    harness.sent()
    harness.receive(f"<presence from='big@example.net' to='{DESK}' type='subscribe'><status>{huge}</status></presence>")
    assert huge not in bot(harness, "desk")._roster._requests[parse_jid("big@example.net")]


def test_ask_policy_answers_now_or_later() -> None:
    harness = desk_harness("ask")
    desk = bot(harness, "desk")
    desk.answer = False
    harness.receive(f"<presence from='{ROMEO}' to='{DESK}' type='subscribe'/>")
    harness.expect(f"<presence from='{DESK}' to='{ROMEO}' type='unsubscribed'/>")
    later: defer.Deferred[bool | None] = defer.Deferred()
    desk.answer = later
    harness.receive(f"<presence from='{JULIET}' to='{DESK}' type='subscribe'/>")
    harness.expect_nothing()
    later.callback(True)
    harness.expect(
        f"<presence from='{DESK}' to='{JULIET}' type='subscribed'/>",
        f"<presence from='{DESK}' to='{JULIET}'><status>Open</status></presence>",
    )


def test_a_request_withdrawn_before_the_answer_is_not_approved() -> None:
    harness = desk_harness("ask")
    desk = bot(harness, "desk")
    later: defer.Deferred[bool | None] = defer.Deferred()
    desk.answer = later
    harness.receive(f"<presence from='{ROMEO}' to='{DESK}' type='subscribe'/>")
    harness.receive(f"<presence from='{ROMEO}' to='{DESK}' type='unsubscribe'/>")
    later.callback(True)
    harness.expect_nothing()
    assert desk.roster.state(parse_jid(ROMEO)) == Subscription()


def test_a_failing_hook_leaves_the_request_pending() -> None:
    harness = desk_harness("ask")
    desk = bot(harness, "desk")

    def broken(jid: JID) -> None:
        raise RuntimeError("bug in entity code")

    desk.on_subscription_request = broken
    harness.receive(f"<presence from='{ROMEO}' to='{DESK}' type='subscribe'/>")
    harness.expect_nothing()
    assert desk.roster.requests() == [parse_jid(ROMEO)]


def test_deny_cancels_an_existing_subscription() -> None:
    harness = desk_harness("approve")
    desk = bot(harness, "desk")
    harness.receive(f"<presence from='{ROMEO}' to='{DESK}' type='subscribe'/>")
    harness.sent()
    desk.deny(parse_jid(ROMEO))
    harness.expect(
        f"<presence from='{DESK}' to='{ROMEO}' type='unavailable'/>",
        f"<presence from='{DESK}' to='{ROMEO}' type='unsubscribed'/>",
    )
    assert desk.roster.state(parse_jid(ROMEO)) == Subscription()


def test_unsubscribing_is_always_routed() -> None:
    harness = desk_harness("ask")
    desk = bot(harness, "desk")
    desk.unsubscribe(parse_jid(f"{ROMEO}/orchard"))
    harness.expect(f"<presence from='{DESK}' to='{ROMEO}' type='unsubscribe'/>")
    with pytest.raises(ValueError):
        desk.subscribe(parse_jid(DESK))


# -- notices -----------------------------------------------------------------------


def test_a_notice_goes_as_a_headline_to_subscribers_only() -> None:
    harness = notices()
    subscribed_both(harness)
    harness.receive(f"<presence from='{ROMEO}' to='{NEWS}' type='subscribe'/>")  # from + pending out
    bot(harness).subscribe(parse_jid("nurse@example.com"))  # pending out only: not a subscriber
    harness.sent()
    harness.receive(f"<message from='{EDITOR}/desk' to='{NEWS}' type='chat'><body>!notice The feud is over</body></message>")
    harness.expect(
        f"<message from='{NEWS}' to='{JULIET}' type='headline'><body>The feud is over</body></message>",
        f"<message from='{NEWS}' to='{ROMEO}' type='headline'><body>The feud is over</body></message>",
        f"<message from='{NEWS}' to='{EDITOR}/desk' type='chat'><body>Sent to 2 subscribers.</body></message>",
    )


def test_admin_commands_and_everyone_else() -> None:
    harness = notices()
    subscribed_both(harness)
    harness.receive(f"<presence from='{JULIET}/balcony' to='{NEWS}'/><presence from='{JULIET}/chamber' to='{NEWS}'/>")
    harness.receive(f"<presence from='{ROMEO}' to='{NEWS}' type='subscribe'/>")
    harness.sent()
    harness.receive(
        f"<message from='{EDITOR}/desk' to='{NEWS}' type='chat'><body>!roster</body><thread>t1</thread></message>"
        f"<message from='{EDITOR}/desk' to='{NEWS}'><body>!notice</body></message>"
        f"<message from='{EDITOR}/desk' to='{NEWS}' type='chat'><body>hello</body></message>"
        f"<message from='{EDITOR}/desk' to='{NEWS}' type='chat'><body>!remove @@</body></message>"
        f"<message from='{JULIET}/balcony' to='{NEWS}' type='chat'><body>!notice spam</body></message>"
        f"<message from='{JULIET}/balcony' to='{NEWS}' type='headline'><body>hi</body></message>"
        f"<message from='{JULIET}/balcony' to='{NEWS}' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>"
    )
    harness.expect(
        f"<message from='{NEWS}' to='{EDITOR}/desk' type='chat'><body>{JULIET} both online=balcony,chamber\n"
        f"{ROMEO} from +pending-out</body><thread>t1</thread></message>",
        f"<message from='{NEWS}' to='{EDITOR}/desk'><body>Usage: !notice TEXT</body></message>",
        f"<message from='{NEWS}' to='{EDITOR}/desk' type='chat'><body>Commands: !notice TEXT, !roster, !remove JID</body></message>",
        f"<message from='{NEWS}' to='{EDITOR}/desk' type='chat'><body>Usage: !remove JID</body></message>",
        f"<message from='{NEWS}' to='{JULIET}/balcony' type='chat'>"
        "<body>I send notices to my subscribers. Add me to your contacts to receive them.</body></message>",
    )


def test_bots_show_in_disco() -> None:
    harness = notices()
    harness.receive(
        f"<iq from='{JULIET}/balcony' to='{D}' type='get' id='i1'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>"
        f"<iq from='{JULIET}/balcony' to='{NEWS}' type='get' id='i2'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
    )
    items, info = harness.sent()
    assert [(item.get("jid"), item.get("name")) for item in items[0]] == [(NEWS, "News"), (f"weather@{D}", "Weather")]
    assert [(i.get("category"), i.get("type"), i.get("name")) for i in info[0] if i.tag.endswith("identity")] == [
        ("client", "bot", "News")
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"bots": {}}, "notices.bots must be a table"),
        ({"bots": {"news": "x"}}, "notices.bots.news must be a table"),
        ({"bots": {"news": {"colour": "red"}}}, "notices.bots.news.colour is not a setting"),
        ({"bots": {"news": {"show": "busy"}}}, "notices.bots.news.show must be one of"),
        ({"bots": {"news": {"name": 3}}}, "notices.bots.news.name must be a string"),
        ({"bots": {"a b": {}}}, "'a b' is not a valid localpart"),
        ({"bots": {"news": {}}, "admins": "editor@example.org"}, "notices.admins must be a list of JIDs"),
        ({"bots": {"news": {}}, "admins": ["@"]}, "notices.admins"),
    ],
)
def test_config_mistakes_name_the_key(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Harness(D, (NoticesService, options))


def test_a_bot_named_without_a_name_is_called_by_its_node() -> None:
    harness = Harness(D, (NoticesService, {"bots": {"alerts": {}}}))
    assert isinstance(bot(harness, "alerts"), NoticesBot)
    assert bot(harness, "alerts").name == "alerts"


# -- persistence -------------------------------------------------------------------


@pytest_twisted.async_yield_fixture
async def database(tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a SQLite file for the rosters."""
    yield f"sqlite:///{tmp_path / 'netherfield.db'}"


async def started(url: str, *services: Any) -> tuple[Harness, Storage]:
    """A harness on the database at ``url``, started, then connected."""
    storage = await open_storage(url, migrations=[ROSTER_MIGRATIONS])
    harness = Harness(D, *services, storage=storage, connected=False)
    await harness.started
    harness.connect()
    return harness, storage


@pytest_twisted.ensureDeferred
async def test_stanzas_leave_only_once_the_roster_change_is_stored(database: str) -> None:
    harness, storage = await started(database, (NoticesService, NOTICES))
    harness.receive(f"<presence from='{JULIET}' to='{NEWS}' type='subscribe'/>")
    harness.receive(f"<message from='{EDITOR}/desk' to='{NEWS}' type='chat'><body>!roster</body></message>")
    # The SQLite thread has not answered yet: nothing may announce the change,
    # and the answer about the roster waits behind it.
    harness.expect_nothing()
    await bot(harness).settled()
    harness.expect(
        f"<presence from='{NEWS}' to='{JULIET}' type='subscribed'/>",
        f"<presence from='{NEWS}' to='{JULIET}'><status>Hot off the press</status></presence>",
        f"<presence from='{NEWS}' to='{JULIET}' type='subscribe'/>",
        f"<message from='{NEWS}' to='{EDITOR}/desk' type='chat'><body>{JULIET} from +pending-out</body></message>",
    )
    await harness.component.stop_services()
    await storage.close()


@pytest_twisted.ensureDeferred
async def test_rosters_survive_a_restart_and_the_bots_announce_themselves(database: str) -> None:
    harness, storage = await started(database, (NoticesService, NOTICES))
    harness.receive(f"<presence from='{JULIET}' to='{NEWS}' type='subscribe'/>")
    harness.receive(f"<presence from='{JULIET}' to='{NEWS}' type='subscribed'/>")
    harness.receive(f"<presence from='{ROMEO}' to='{NEWS}' type='subscribe'/>")
    await bot(harness).settled()
    harness.sent()
    # The process dies: no goodbye, no close. Another starts on the same file.
    again, storage2 = await started(database, (NoticesService, NOTICES))
    news = bot(again)
    assert news.roster.state(parse_jid(JULIET)) == Subscription("both")
    assert news.roster.state(parse_jid(ROMEO)) == Subscription("from", pending_out=True)
    again.expect(
        f"<presence from='{NEWS}' to='{JULIET}'><status>Hot off the press</status></presence>",
        f"<presence from='{NEWS}' to='{ROMEO}'><status>Hot off the press</status></presence>",
        f"<presence from='{NEWS}' to='{JULIET}' type='probe'/>",
        f"<presence from='{NEWS}' to='{ROMEO}' type='subscribe'/>",
    )
    await again.component.stop_services()
    await storage2.close()
    await storage.close()


@pytest_twisted.ensureDeferred
async def test_pending_requests_are_offered_again_after_a_restart(database: str) -> None:
    harness, storage = await started(database, (DeskService, {"policy": "ask"}))
    harness.receive(f"<presence from='{ROMEO}' to='{DESK}' type='subscribe'><status>Let me in</status></presence>")
    await bot(harness, "desk").settled()
    harness.expect_nothing()
    again, storage2 = await started(database, (DeskService, {"policy": "ask"}))
    desk = bot(again, "desk")
    assert desk.asked == [ROMEO]
    assert desk.roster.state(parse_jid(ROMEO)) == Subscription("none", pending_in=True)
    requests = await RosterStore(storage2).requests(DESK)
    assert "Let me in" in requests[ROMEO]
    await desk.approve(parse_jid(ROMEO))
    again.expect(
        f"<presence from='{DESK}' to='{ROMEO}' type='subscribed'/>",
        f"<presence from='{DESK}' to='{ROMEO}'><status>Open</status></presence>",
    )
    # Another handshake in the same process does not ask again.
    again.disconnect()
    again.connect()
    assert desk.asked == [ROMEO]
    await storage2.close()
    await storage.close()
