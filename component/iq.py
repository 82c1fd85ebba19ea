"""Tracking of the IQ requests an entity sends, until their reply or their timeout."""

from __future__ import annotations

from typing import Any

from lxml import etree
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from component.errors import StanzaError
from component.jid import JID
from component.stanza import Stanza

__all__ = ["IQTracker", "IQTimeout"]


class IQTimeout(defer.TimeoutError):
    """No reply arrived in time."""


class IQTracker:
    """Pending requests, keyed by id *and* the address the request went to.

    Matching on both stops anyone but the addressee from answering a request
    whose id they guessed.
    """

    def __init__(self, clock: IReactorTime, timeout: float) -> None:
        self._clock = clock
        self.timeout = timeout
        self._pending: dict[tuple[str, JID], tuple[defer.Deferred[Any], IDelayedCall]] = {}
        #: Requests that got no reply in time.
        self.timeouts = 0

    def __len__(self) -> int:
        return len(self._pending)

    def track(
        self, request: etree._Element, recipient: JID, timeout: float | None = None
    ) -> defer.Deferred[etree._Element]:
        """A Deferred for the reply to ``request``, which must carry an id.

        It fires with the ``result`` element (a copy of the one received, the
        caller's to keep), fails with the :class:`StanzaError` of an ``error``
        reply, or with :class:`IQTimeout`.
        """
        stanza_id = request.get("id")
        if not stanza_id:
            raise ValueError("an IQ request needs an id")
        key = (stanza_id, recipient)
        if key in self._pending:
            raise ValueError(f"a request with id {stanza_id!r} to {recipient} is already pending")

        def cancel(_: defer.Deferred[Any]) -> None:
            entry = self._pending.pop(key, None)
            if entry is not None and entry[1].active():
                entry[1].cancel()

        deferred: defer.Deferred[etree._Element] = defer.Deferred(cancel)
        delay = self.timeout if timeout is None else timeout
        timer = self._clock.callLater(delay, self._expire, key, delay)
        self._pending[key] = (deferred, timer)
        return deferred

    def _expire(self, key: tuple[str, JID], delay: float) -> None:
        entry = self._pending.pop(key, None)
        if entry is not None:
            self.timeouts += 1
            entry[0].errback(IQTimeout(f"no reply from {key[1]} to iq {key[0]} within {delay:g} s"))

    def resolve(self, stanza: Stanza) -> bool:
        """Hand a received ``result`` or ``error`` to its request; False if none waits."""
        stanza_id = stanza.element.get("id")
        if stanza_id is None:
            return False
        entry = self._pending.pop((stanza_id, stanza.sender), None)
        if entry is None:
            return False
        deferred, timer = entry
        if timer.active():
            timer.cancel()
        # The caller uses the reply after the stream has let go of it: a copy
        # made now, while it is still in the stream, stays whole.
        stanza.keep()
        if stanza.element.get("type") == "result":
            deferred.callback(stanza.element)
        else:
            deferred.errback(StanzaError.from_stanza(stanza.element))
        return True
