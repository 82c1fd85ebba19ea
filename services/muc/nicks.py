"""Room nicknames (XEP-0045 §7.2.9, §7.6, §17.1): which nicks may be used, and which count as the same.

A nick arrives as the resource of an occupant JID, already Resourceprep'd.
Two nicks conflict when they look alike, not only when they are equal: their
*key* is the UTS #39 skeleton of the NFKC case fold of the nick, so
``alice``, ``Alice``, ``ALICE``, ``alice`` in fullwidth letters and ``alice``
with a Cyrillic a (U+0430) share one key. XEP-0045 leaves how conflicts are
determined to the service. Both halves come from ICU, the reference
implementation of UTS #15 and UTS #39, with one Unicode version for both.

Case folding comes first, as it must for ``ALICE`` to meet ``alice``; the
price is that a capital I, which looks like a small l in many fonts, is
folded to i before the skeleton could map it: ``AIice`` stays apart from ``alice``.

Past the XEP's own rule (no empty or invisible nicks), a nick may not begin or
end with whitespace, which would otherwise impersonate its trimmed form in
every client that does not show it, and may not exceed a length the service sets.
"""

from __future__ import annotations

import icu

from component.errors import StanzaError

__all__ = ["DEFAULT_MAX_LENGTH", "check_nick", "nick_key"]

#: Characters a nick may have unless the service says otherwise (``max_nick_length``).
DEFAULT_MAX_LENGTH = 64

_FOLD = icu.Normalizer2.getNFKCCasefoldInstance()
_SPOOF = icu.SpoofChecker()


def nick_key(nick: str) -> str:
    """What a nick looks like: equal for nicks that conflict (the UTS #39 skeleton of its NFKC case fold)."""
    # ICU ignores the skeleton type since ICU 58: one table serves every case.
    return str(_SPOOF.getSkeleton(0, _FOLD.normalize(nick)))


def check_nick(nick: str, max_length: int) -> str:
    """Raise the error for a nick nobody may use; return its key.

    Empty or invisible (§17.1): ``jid-malformed``, like a missing nick
    (§7.2.1). Whitespace at either end, or longer than ``max_length``
    characters: ``not-acceptable``, a policy of this service.
    """
    key = nick_key(nick)
    if not key.strip():
        raise StanzaError("jid-malformed", text="the nick is empty or invisible")
    if nick != nick.strip():
        raise StanzaError("not-acceptable", text="a nick may not begin or end with whitespace")
    if len(nick) > max_length:
        raise StanzaError("not-acceptable", text=f"a nick may have at most {max_length} characters")
    return key
