"""What one user may make the MUC service hold or send: quotas and rate limits.

Each limit has a default that nobody using the service normally reaches, and
is set in ``[components."DOMAIN".muc]``. Service admins are exempt from the
counts and rates. Over a limit, a stanza gets an error and has no effect:

- creating more rooms than ``max_rooms_per_user``: ``not-allowed``, the error
  XEP-0045 §10.1.1 gives for a refused creation (Prosody's too);
- a change of affiliations (a muc#admin set, the configuration form's lists,
  an invitation into a members-only room, a registration) that would leave a
  room with more than ``max_affiliations`` of them: ``policy-violation``, the
  whole change refused before anything of it is stored or told. Each room has
  a creator who owns it, and owners add affiliations at will, so only a cap
  per room bounds the rows one user can make the service keep. A change that
  adds none (a member made admin, a removal) passes even a room over the
  limit, which a lowered limit can leave;
- more than ``max_pending_iqs`` IQs from one occupant waiting for other
  occupants' answers, or more invitations, voice requests or registrations
  a minute than allowed: ``resource-constraint`` (type wait), as ejabberd
  answers traffic over its shapers and too frequent voice requests;
- groupchat messages or presences from one user to one room faster than its
  token bucket allows (a burst, refilled at a rate): ``policy-violation``
  (type wait) with the text of Prosody's ``mod_muc_limits``. Leaving a room
  is never refused;
- a presence bigger than ``max_presence_bytes``: kept, and shown to others,
  without the extensions that do not fit (see ``presence_template``);
- a decline from someone who is neither an occupant nor invited (by the one
  the decline is addressed to, within a day; the last
  ``max_pending_invitations`` invitations are remembered): ``not-acceptable``,
  and nothing is relayed, so the room sends no text to an address of a
  stranger's choosing.

It also remembers, for ``absent_rooms_seconds``, up to ``absent_rooms_cached``
rooms the database does not have, so that stanzas to made-up rooms cost no
database read each. A room created here is forgotten at once; one created by
another process on the same database is seen once its entry expires.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

from component.errors import StanzaError
from component.jid import JID
from component.options import setting
from component.ratelimit import Counter, ExpiringSet, RateLimiter

__all__ = ["LimitSettings", "MucLimits", "OVERACTIVE"]

#: What Prosody's mod_muc_limits tells someone over the room's rate.
OVERACTIVE = "The room is currently overactive, please try again later"

#: How long an invitation may be declined.
INVITATION_SECONDS = 24 * 3600.0


def _setting(default: float, doc: str) -> Any:
    return setting(default, doc, minimum=0)


@attrs.frozen
class LimitSettings:
    """The MUC's limits as configured; each name is its key in the service's table (see :mod:`services.muc.settings`)."""

    max_rooms_per_user: int = _setting(100, "rooms one user may have created that still exist (0: no limit)")
    max_affiliations: int = _setting(
        2000, "affiliations (owners, admins, members, outcasts) one room may hold (0: no limit)"
    )
    max_pending_iqs: int = _setting(32, "IQs one occupant may have waiting for other occupants' answers (0: no limit)")
    invitations_per_minute: int = _setting(30, "invitations one user may send a minute (0: no limit)")
    voice_requests_per_minute: int = _setting(5, "voice requests one user may send a minute (0: no limit)")
    registrations_per_minute: int = _setting(10, "registrations with rooms one user may send a minute (0: no limit)")
    groupchat_burst: int = _setting(10, "groupchat messages one user may send a room at once (0: no limit)")
    groupchat_rate: float = _setting(1.0, "groupchat messages a second that refill that burst")
    presence_burst: int = _setting(10, "presences one user may send a room at once (0: no limit)")
    presence_rate: float = _setting(0.5, "presences a second that refill that burst")
    max_presence_bytes: int = _setting(8192, "bytes of an occupant's presence kept and shown to others (0: no limit)")
    max_pending_invitations: int = _setting(10_000, "invitations remembered, for a day each, so they may be declined")
    absent_rooms_cached: int = _setting(10_000, "rooms remembered as not in the database (0: none)")
    absent_rooms_seconds: float = _setting(60.0, "seconds a room is remembered as not in the database")


class MucLimits:
    """The limits of one MUC service and what they count."""

    def __init__(self, settings: LimitSettings, clock: Callable[[], float], is_admin: Callable[[JID], bool]) -> None:
        self.settings = settings
        self._is_admin = is_admin
        # Rooms by the users they count against, and back.
        self._rooms: dict[JID, set[str]] = {}
        self._counted: dict[str, set[JID]] = {}
        self._pending_iqs: Counter[tuple[str, JID]] = Counter(settings.max_pending_iqs)
        self._per_minute: dict[str, RateLimiter[JID]] = {
            "invitations": _per_minute(settings.invitations_per_minute, clock),
            "voice requests": _per_minute(settings.voice_requests_per_minute, clock),
            "registrations": _per_minute(settings.registrations_per_minute, clock),
        }
        self._groupchat: RateLimiter[tuple[str, JID]] = RateLimiter(
            settings.groupchat_rate, settings.groupchat_burst, clock
        )
        self._presence: RateLimiter[tuple[str, JID]] = RateLimiter(
            settings.presence_rate, settings.presence_burst, clock
        )
        #: (room, invitee, inviter), bare JIDs, for each invitation that may still be declined.
        self._invited: ExpiringSet[tuple[str, JID, JID]] = ExpiringSet(
            INVITATION_SECONDS, clock, settings.max_pending_invitations
        )
        #: Rooms the database does not have (the service reads and fills it).
        self.absent: ExpiringSet[str] = ExpiringSet(settings.absent_rooms_seconds, clock, settings.absent_rooms_cached)

    def carry_over(self, previous: MucLimits) -> None:
        """Take over what ``previous`` counted, under these settings.

        For a configuration reload, which must neither forget whose rooms are
        whose nor hand everyone a full bucket: rooms per user, IQs waiting for
        an answer (each answer is counted off the same count), rate buckets
        (refilling at the new rate, up to the new burst) and invitations that
        may be declined carry over. Which rooms the database lacks does not.
        """
        self._rooms, self._counted = previous._rooms, previous._counted
        previous._invited.max_keys = self._invited.max_keys
        self._invited = previous._invited
        previous._pending_iqs.limit = self._pending_iqs.limit
        self._pending_iqs = previous._pending_iqs
        for name, limiter in self._per_minute.items():
            self._per_minute[name] = _retuned(previous._per_minute[name], limiter)
        self._groupchat = _retuned(previous._groupchat, self._groupchat)
        self._presence = _retuned(previous._presence, self._presence)

    # -- rooms per user ------------------------------------------------------

    def count_rooms(self, owners: Iterable[tuple[str, JID]]) -> None:
        """Count stored rooms against their owners (who created them is not stored)."""
        for node, owner in owners:
            self._count(node, owner.bare)

    def check_creation(self, creator: JID) -> None:
        """Raise ``not-allowed`` when ``creator`` already has as many rooms as it may."""
        limit = self.settings.max_rooms_per_user
        if limit and not self._is_admin(creator) and len(self._rooms.get(creator.bare, ())) >= limit:
            raise StanzaError("not-allowed", text=f"you may have at most {limit} rooms")

    def room_created(self, node: str, creator: JID) -> None:
        """``creator`` created the room ``node``: it counts until the room is gone."""
        self.absent.discard(node)
        if not self._is_admin(creator):
            self._count(node, creator.bare)

    def room_gone(self, node: str) -> None:
        """The room ``node`` was destroyed or vanished: it no longer counts against anyone."""
        for user in self._counted.pop(node, ()):
            rooms = self._rooms.get(user)
            if rooms is not None:
                rooms.discard(node)
                if not rooms:
                    del self._rooms[user]

    # -- affiliations per room -------------------------------------------------

    def check_affiliations(self, before: int, after: int, by: JID | None) -> None:
        """Raise ``policy-violation`` when a change takes a room from ``before`` to ``after`` affiliations, past the limit.

        ``by`` asked for it (a service admin is exempt); None: nobody is, and it is held to the limit.
        """
        limit = self.settings.max_affiliations
        if limit and after > limit and after > before and (by is None or not self._is_admin(by)):
            raise StanzaError("policy-violation", text=f"a room may hold at most {limit} affiliations")

    def _count(self, node: str, user: JID) -> None:
        self._rooms.setdefault(user, set()).add(node)
        self._counted.setdefault(node, set()).add(user)

    # -- IQs through the room --------------------------------------------------

    def start_iq(self, node: str, sender: JID) -> tuple[str, JID] | None:
        """An occupant's IQ goes to another occupant: count it, or raise ``resource-constraint``.

        Give what it returns to :meth:`end_iq` once the answer (or the timeout) came.
        """
        if self._is_admin(sender):
            return None
        key = (node, sender.bare)
        if not self._pending_iqs.acquire(key):
            raise StanzaError("resource-constraint", "wait", text="too many of your queries are waiting for an answer")
        return key

    def end_iq(self, result: Any, key: tuple[str, JID] | None) -> Any:
        """A callback for the answer to an IQ :meth:`start_iq` counted: it no longer counts."""
        if key is not None:
            self._pending_iqs.release(key)
        return result

    # -- requests a minute ---------------------------------------------------------

    def check_invitations(self, sender: JID, count: int) -> None:
        """Raise ``resource-constraint`` when ``sender`` may not send ``count`` more invitations now."""
        self._check_per_minute("invitations", sender, count)

    def check_voice_request(self, sender: JID) -> None:
        """Raise ``resource-constraint`` when ``sender`` asked for voice too often."""
        self._check_per_minute("voice requests", sender)

    def check_registration(self, sender: JID) -> None:
        """Raise ``resource-constraint`` when ``sender`` registered (or cancelled) too often."""
        self._check_per_minute("registrations", sender)

    def _check_per_minute(self, what: str, sender: JID, count: int = 1) -> None:
        limiter = self._per_minute[what]
        # More than a minute's worth at once is refused, not waited for forever.
        if not self._is_admin(sender) and not limiter.allow(sender.bare, min(count, limiter.burst)):
            raise StanzaError("resource-constraint", "wait", text=f"too many {what}; try again in a minute")

    # -- traffic into a room -----------------------------------------------------

    def check_groupchat(self, node: str, sender: JID) -> None:
        """Raise ``policy-violation`` when ``sender`` speaks in the room faster than allowed."""
        self._check_rate(self._groupchat, node, sender)

    def check_presence(self, node: str, sender: JID) -> None:
        """Raise ``policy-violation`` when ``sender`` sends the room presence faster than allowed."""
        self._check_rate(self._presence, node, sender)

    def _check_rate(self, limiter: RateLimiter[tuple[str, JID]], node: str, sender: JID) -> None:
        # The bucket first: it costs less than asking whether the sender is an admin, and
        # an admin passes whatever the bucket holds, so what it spends changes nothing.
        if not limiter.allow((node, sender.bare)) and not self._is_admin(sender):
            raise StanzaError("policy-violation", "wait", text=OVERACTIVE)

    # -- declines ------------------------------------------------------------------

    def invited(self, node: str, invitee: JID, inviter: JID) -> None:
        """The room sent ``invitee`` an invitation from ``inviter``: it may be declined."""
        self._invited.add((node, invitee.bare, inviter.bare))

    def check_decline(self, node: str, sender: JID, inviter: JID, *, occupant: bool) -> None:
        """Raise ``not-acceptable`` unless ``sender`` was invited by ``inviter`` or is an occupant.

        An invitation is declined once; an occupant's declines count as invitations.
        """
        key = (node, sender.bare, inviter.bare)
        if key in self._invited:
            self._invited.discard(key)
        elif occupant:
            self._check_per_minute("invitations", sender)
        else:
            raise StanzaError("not-acceptable", text="only someone invited may decline an invitation")


def _retuned(limiter: RateLimiter[Any], settings: RateLimiter[Any]) -> RateLimiter[Any]:
    """``limiter``, with its buckets, at the rate and burst of ``settings``."""
    limiter.rate, limiter.burst = settings.rate, settings.burst
    return limiter


def _per_minute(count: int, clock: Callable[[], float]) -> RateLimiter[JID]:
    return RateLimiter(count / 60, count, clock)
