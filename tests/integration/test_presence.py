"""Entities with their own roster and presence, against real Prosody and ejabberd with slixmpp users.

The notices service runs one bot, ``news@notices.localhost``; a user adds
it and an admin account asks the bot, with ``!roster``, what its roster
and its contacts' presence look like from the component's side. The rosters
live in a SQLite file that outlives each component process, so restarts
and crashes reuse it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slixmpp import JID

from tests.integration.clients import TestClient, client, new_user, run, user_jid
from tests.integration.conftest import ComponentLauncher
from tests.integration.servers import ComponentProcess, XMPPServer

BOT = "news@notices.localhost"
STATUS = "Hot off the press"


def notices_config(database: Path, admin: str) -> dict[str, Any]:
    return {
        "storage": {"url": f"sqlite:///{database}"},
        "components": {
            "notices.localhost": {
                "services": ["notices"],
                "notices": {"admins": [admin], "bots": {"news": {"name": "News", "status": STATUS}}},
            }
        },
    }


async def until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Wait until ``check()`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"still not {what} after {timeout:g} s")
        await asyncio.sleep(0.05)


def subscription(user: TestClient) -> str:
    """The user's subscription to the bot, as the server's roster pushes said."""
    if not user.client_roster.has_jid(BOT):
        return "none"
    item = user.client_roster[BOT]
    return str(item["subscription"]) + (" +pending-out" if item["pending_out"] else "")


async def ask(admin: TestClient, command: str) -> str:
    """Send the bot an admin command and return its answer."""
    admin.send_message(mto=JID(BOT), mbody=command, mtype="chat")
    answer = await admin.next_message(lambda m: m["from"].bare == BOT and m["type"] == "chat")
    return str(answer["body"])


async def bot_roster_until(admin: TestClient, check: Callable[[str], bool], what: str, timeout: float = 15.0) -> str:
    """Ask ``!roster`` until the answer passes ``check``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        answer = await ask(admin, "!roster")
        if check(answer):
            return answer
        if loop.time() > deadline:
            raise AssertionError(f"the bot's roster is still not {what}: {answer!r}")
        await asyncio.sleep(0.2)


def from_bot(kind: str) -> Callable[[Any], bool]:
    return lambda p: p["from"].bare == BOT and p["type"] == kind


async def become_friends(user: TestClient, admin: TestClient, user_bare: str) -> None:
    """The user adds the bot; both sides end in ``both`` and see each other online."""
    user.send_presence(pto=JID(BOT), ptype="subscribe")
    await until(lambda: subscription(user) == "both", "both on the user's side")
    available = await user.next_presence(from_bot("available"))
    assert available["status"] == STATUS
    await bot_roster_until(admin, lambda text: text.startswith(f"{user_bare} both online="), "both with the user online")


class Scenario:
    """A test's server, users and component processes."""

    def __init__(self, server: XMPPServer, launch: ComponentLauncher, tmp_path: Path) -> None:
        self.server = server
        self.launch = launch
        self.user, self.password = new_user(server, "juliet")
        self.admin, self.admin_password = new_user(server, "editor")
        self.user_bare = user_jid(server, self.user)
        self.config = notices_config(tmp_path / "rosters.db", user_jid(server, self.admin))
        self.process: ComponentProcess = launch(server, self.config)

    async def restart(self, crash: bool = False) -> None:
        """Stop the component (cleanly, or by SIGKILL) and start another on the same database."""
        await asyncio.to_thread(self.process.kill9 if crash else self.process.stop)
        self.process = await asyncio.to_thread(self.launch, self.server, self.config)


def test_user_and_bot_subscribe_both_ways_and_see_each_other_come_and_go(
    xmpp_server: XMPPServer, component_process: ComponentLauncher, tmp_path: Path
) -> None:
    s = Scenario(xmpp_server, component_process, tmp_path)

    async def scenario() -> None:
        async with client(xmpp_server, s.admin, s.admin_password) as admin:
            async with client(xmpp_server, s.user, s.password, resource="balcony") as juliet:
                await become_friends(juliet, admin, s.user_bare)
                assert await ask(admin, "!notice The feud is over") == "Sent to 1 subscriber."
                notice = await juliet.next_message(lambda m: m["from"].bare == BOT)
                assert (notice["type"], notice["body"]) == ("headline", "The feud is over")
            # The user logged out: the bot sees it.
            await bot_roster_until(admin, lambda text: text == f"{s.user_bare} both", "without the user online")
            async with client(xmpp_server, s.user, s.password, resource="chamber") as juliet:
                # At login the server probes the bot; the bot answers.
                await juliet.next_presence(from_bot("available"))
                await bot_roster_until(admin, lambda text: text == f"{s.user_bare} both online=chamber", "online")
                juliet.drop_received()
                # A clean shutdown: the user sees the bot go offline.
                assert await asyncio.to_thread(s.process.stop) in ComponentProcess.CLEAN_EXITS
                await juliet.next_presence(from_bot("unavailable"))

    run(scenario(), timeout=120)


def test_after_a_restart_the_bot_is_back_online_with_its_roster(
    xmpp_server: XMPPServer, component_process: ComponentLauncher, tmp_path: Path
) -> None:
    s = Scenario(xmpp_server, component_process, tmp_path)

    async def scenario() -> None:
        async with client(xmpp_server, s.admin, s.admin_password) as admin:
            async with client(xmpp_server, s.user, s.password, resource="balcony") as juliet:
                await become_friends(juliet, admin, s.user_bare)
                juliet.drop_received()
                await s.restart()
                await juliet.next_presence(from_bot("unavailable"))
                back = await juliet.next_presence(from_bot("available"))
                assert back["status"] == STATUS
                # The bot probed the user after its handshake and knows she is online.
                await bot_roster_until(admin, lambda text: text == f"{s.user_bare} both online=balcony", "intact")
                assert subscription(juliet) == "both"

    run(scenario(), timeout=120)


def test_a_subscription_approved_before_a_crash_is_approved_after_it(
    xmpp_server: XMPPServer, component_process: ComponentLauncher, tmp_path: Path
) -> None:
    s = Scenario(xmpp_server, component_process, tmp_path)

    async def scenario() -> None:
        async with client(xmpp_server, s.admin, s.admin_password) as admin:
            async with client(xmpp_server, s.user, s.password, resource="balcony") as juliet:
                juliet.send_presence(pto=JID(BOT), ptype="subscribe")
                # The user's server has the approval: it was stored before it was sent.
                await until(lambda: subscription(juliet).startswith(("to", "both")), "approved")
                # The bot's answers wait for its writes: what it reports is stored.
                await bot_roster_until(
                    admin,
                    lambda text: text.startswith((f"{s.user_bare} from +pending-out", f"{s.user_bare} both")),
                    "following her back",
                )
                juliet.drop_received()
                await s.restart(crash=True)
                # The bot still counts her as a subscriber: she sees it come back.
                await juliet.next_presence(from_bot("available"))
                await bot_roster_until(
                    admin, lambda text: text.startswith((f"{s.user_bare} from", f"{s.user_bare} both")), "intact"
                )
                # Whatever was in flight at the crash, the repeated request completes the pair.
                await until(lambda: subscription(juliet) == "both", "both on the user's side")
                await bot_roster_until(admin, lambda text: text.startswith(f"{s.user_bare} both"), "both")

    run(scenario(), timeout=120)


def test_the_user_unsubscribing_leaves_both_sides_at_none(
    xmpp_server: XMPPServer, component_process: ComponentLauncher, tmp_path: Path
) -> None:
    s = Scenario(xmpp_server, component_process, tmp_path)

    async def scenario() -> None:
        async with client(xmpp_server, s.admin, s.admin_password) as admin:
            async with client(xmpp_server, s.user, s.password, resource="balcony") as juliet:
                await become_friends(juliet, admin, s.user_bare)
                juliet.drop_received()
                juliet.send_presence(pto=JID(BOT), ptype="unsubscribe")
                await juliet.next_presence(from_bot("unavailable"))
                # The bot follows: it unsubscribes from her too and forgets her.
                await until(lambda: subscription(juliet) == "none", "none on the user's side")
                await bot_roster_until(admin, lambda text: text == "No contacts.", "empty")
                assert await ask(admin, "!notice Anyone?") == "Sent to 0 subscribers."

    run(scenario(), timeout=120)


def test_the_bot_removing_the_user_leaves_both_sides_at_none(
    xmpp_server: XMPPServer, component_process: ComponentLauncher, tmp_path: Path
) -> None:
    s = Scenario(xmpp_server, component_process, tmp_path)

    async def scenario() -> None:
        async with client(xmpp_server, s.admin, s.admin_password) as admin:
            async with client(xmpp_server, s.user, s.password, resource="balcony") as juliet:
                await become_friends(juliet, admin, s.user_bare)
                juliet.drop_received()
                assert await ask(admin, f"!remove {s.user_bare}") == f"Removed {s.user_bare}."
                await juliet.next_presence(from_bot("unavailable"))
                await until(lambda: subscription(juliet) == "none", "none on the user's side")
                await bot_roster_until(admin, lambda text: text == "No contacts.", "empty")
                # She may come back: the whole handshake works again.
                await become_friends(juliet, admin, s.user_bare)

    run(scenario(), timeout=120)
