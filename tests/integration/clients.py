"""Real XMPP users, logged in with slixmpp, for tests against a running server.

`client(server, user, password)` is an async context manager that yields a
connected, session-started `TestClient`; `TestClient.next_message` and
`next_presence` await the next matching stanza with a timeout. Tests stay
plain sync functions and call `run(coro)`.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

import slixmpp
from slixmpp.stanza import Message, Presence
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

__all__ = [
    "DEFAULT_PLUGINS",
    "ClientError",
    "TestClient",
    "client",
    "new_user",
    "run",
    "user_jid",
]

T = TypeVar("T")
S = TypeVar("S", bound=StanzaBase)

#: The plugins every test client has: disco, MUC, ping, software version.
DEFAULT_PLUGINS = ("xep_0030", "xep_0045", "xep_0199", "xep_0092")


class ServerLike(Protocol):
    """What the helpers need to know about a server under test."""

    domain: str
    host: str
    c2s_port: int

    def register(self, user: str, password: str) -> None:
        """Create an account."""


class ClientError(RuntimeError):
    """A test client could not connect, log in, or did not get a stanza in time."""


def run(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    """Run a test coroutine on a fresh event loop, with an overall time limit."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def new_user(server: ServerLike, prefix: str = "user") -> tuple[str, str]:
    """Register a user with a random name; return (localpart, password)."""
    user = f"{prefix}-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12)
    server.register(user, password)
    return user, password


def user_jid(server: ServerLike, user: str) -> str:
    """The bare JID of `user` on `server`."""
    return f"{user}@{server.domain}"


class _Inbox:
    """Stanzas of one kind as they arrived, consumed by predicate."""

    def __init__(self) -> None:
        self.items: list[StanzaBase] = []
        self._waiters: list[asyncio.Future[None]] = []

    def put(self, stanza: StanzaBase) -> None:
        self.items.append(stanza)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    def take(self, predicate: Callable[[Any], bool]) -> StanzaBase | None:
        for index, stanza in enumerate(self.items):
            if predicate(stanza):
                return self.items.pop(index)
        return None

    async def next(self, predicate: Callable[[Any], bool], timeout: float, what: str) -> StanzaBase:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = self.take(predicate)
            if found is not None:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                seen = "\n".join(str(s) for s in self.items[-10:]) or "(nothing)"
                raise ClientError(f"no matching {what} within {timeout:g} s; unmatched ones:\n{seen}")
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                pass


def _any(_stanza: Any) -> bool:
    return True


class TestClient(slixmpp.ClientXMPP):
    """A slixmpp client for loopback servers: no TLS, plain auth allowed.

    Every incoming message and presence is kept in an inbox until a test
    takes it with `next_message` / `next_presence`; stanzas that do not
    match stay for later calls.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, jid: str, password: str, plugins: tuple[str, ...] = DEFAULT_PLUGINS):
        super().__init__(
            jid,
            password,
            plugin_config={"feature_mechanisms": {"unencrypted_plain": True}},
        )
        # Loopback servers without certificates: plain TCP only.
        self.enable_starttls = False
        self.enable_direct_tls = False
        self.enable_plaintext = True
        self.messages = _Inbox()
        self.presences = _Inbox()
        for plugin in plugins:
            self.register_plugin(plugin)
        self.register_handler(
            Callback(
                "test inbox: message",
                MatchXPath(f"{{{self.default_ns}}}message"),
                self.messages.put,
            )
        )
        self.register_handler(
            Callback(
                "test inbox: presence",
                MatchXPath(f"{{{self.default_ns}}}presence"),
                self.presences.put,
            )
        )

    async def next_message(
        self, predicate: Callable[[Message], bool] = _any, timeout: float = 10.0
    ) -> Message:
        """The first message received so far, or from now on, that matches."""
        stanza = await self.messages.next(predicate, timeout, "message")
        assert isinstance(stanza, Message)
        return stanza

    async def next_presence(
        self, predicate: Callable[[Presence], bool] = _any, timeout: float = 10.0
    ) -> Presence:
        """The first presence received so far, or from now on, that matches."""
        stanza = await self.presences.next(predicate, timeout, "presence")
        assert isinstance(stanza, Presence)
        return stanza

    def drop_received(self) -> None:
        """Forget all messages and presences received so far."""
        self.messages.items.clear()
        self.presences.items.clear()


async def _first(awaitables: dict[str, Awaitable[Any]], timeout: float) -> tuple[str, Any]:
    tasks = {asyncio.ensure_future(a): name for name, a in awaitables.items()}
    try:
        done, _ = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
    if not done:
        raise ClientError(f"none of {sorted(awaitables)} within {timeout:g} s")
    task = done.pop()
    return tasks[task], task.result()


@asynccontextmanager
async def client(
    server: ServerLike,
    user: str,
    password: str,
    *,
    resource: str | None = None,
    plugins: tuple[str, ...] = DEFAULT_PLUGINS,
    available: bool = True,
    timeout: float = 15.0,
) -> AsyncIterator[TestClient]:
    """Log `user` in on `server` and yield the session-started client.

    With `available`, the roster is fetched and initial presence sent (so the
    server routes messages for the bare JID to this resource). The client
    disconnects on exit.
    """
    jid = user_jid(server, user) + f"/{resource or 'test-' + secrets.token_hex(3)}"
    xmpp = TestClient(jid, password, plugins)
    started = xmpp.wait_until("session_start", timeout)
    failed = xmpp.wait_until("connection_failed", timeout)
    no_auth = xmpp.wait_until("failed_all_auth", timeout)
    stream_error = xmpp.wait_until("stream_error", timeout)
    xmpp.connect(server.host, server.c2s_port)
    try:
        outcome, detail = await _first(
            {
                "session_start": started,
                "connection_failed": failed,
                "failed_all_auth": no_auth,
                "stream_error": stream_error,
            },
            timeout,
        )
        if outcome != "session_start":
            raise ClientError(f"{jid} could not log in on {server!r}: {outcome} {detail}")
        if available:
            await xmpp.get_roster(timeout=timeout)
            xmpp.send_presence()
        yield xmpp
    finally:
        xmpp.cancel_connection_attempt()
        if xmpp.transport is not None:
            try:
                await asyncio.wait_for(xmpp.disconnect(wait=2.0), 5.0)
            except TimeoutError:
                xmpp.abort()
