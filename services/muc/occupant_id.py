"""Occupant identifiers (XEP-0421 1.0): one stable, opaque id per room and real bare JID.

The id is an HMAC-SHA-256 of the room's bare JID, a NUL and the user's bare
JID, keyed with a secret of the whole service (XEP-0421 §4.1, the second
construction): the same in every rejoin, nick change and client of one user
in one room, different in every other room, and not to be turned back into
the JID by hashing candidate addresses without the secret. The secret is 32
random bytes created once in storage and read back at every start, so ids
survive restarts; a service without storage draws one per process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import lru_cache

from lxml import etree
from twisted.internet.defer import Deferred

from component.jid import JID
from component.storage import Migrations, Storage, Transaction

__all__ = ["OCCUPANT_ID", "OCCUPANT_ID_TAG", "SECRET_MIGRATIONS", "OccupantIds", "load_secret"]

OCCUPANT_ID = "urn:xmpp:occupant-id:0"
OCCUPANT_ID_TAG = f"{{{OCCUPANT_ID}}}occupant-id"

#: Secrets the service keeps across restarts, by name; one row per secret, never rewritten.
SECRET_MIGRATIONS = Migrations(
    "muc_secrets",
    steps=[["CREATE TABLE muc_secrets (name TEXT PRIMARY KEY, secret TEXT NOT NULL)"]],
)

_OPEN = f'<occupant-id xmlns="{OCCUPANT_ID}" id="'.encode()
_CLOSE = b'"/>'
_NAME = "occupant-id"
_SECRET_BYTES = 32
# Ids kept computed: each is one HMAC, but a busy room asks for the same few on every message.
_CACHED = 4096


def _create_or_read(txn: Transaction, name: str, candidate: str) -> str:
    # Two processes starting at once on one database both insert; the second
    # insert does nothing and both read the row that won.
    txn.execute("INSERT INTO muc_secrets (name, secret) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", (name, candidate))
    row = txn.fetchone("SELECT secret FROM muc_secrets WHERE name = ?", (name,))
    assert row is not None
    return str(row[0])


def load_secret(storage: Storage) -> Deferred[bytes]:
    """The service's occupant-id secret, created in *storage* the first time."""
    d = storage.transaction(_create_or_read, _NAME, secrets.token_hex(_SECRET_BYTES))
    return d.addCallback(bytes.fromhex)


class OccupantIds:
    """Occupant ids derived from one service secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("an occupant-id secret needs at least 16 bytes")
        self._secret = secret
        self.of = lru_cache(maxsize=_CACHED)(self._derive)
        self.serialised = lru_cache(maxsize=_CACHED)(self._serialise)

    def _derive(self, room: JID, user: JID) -> str:
        """The occupant id of *user* (any JID of the user) in *room*."""
        text = f"{room.bare}\x00{user.bare}".encode()
        # 44 characters of base64, far below the XEP's 128.
        return base64.b64encode(hmac.new(self._secret, text, hashlib.sha256).digest()).decode("ascii")

    def _serialise(self, room: JID, user: JID) -> bytes:
        """The same element as :meth:`element`, serialised as lxml writes it (base64 needs no escaping).

        Kept computed as :meth:`serialised`: a room adds it to every message.
        """
        return _OPEN + self.of(room, user).encode("ascii") + _CLOSE

    def element(self, room: JID, user: JID) -> etree._Element:
        """``<occupant-id xmlns='urn:xmpp:occupant-id:0' id='…'/>`` for *user* in *room*."""
        return etree.Element(OCCUPANT_ID_TAG, {"id": self.of(room, user)}, nsmap={None: OCCUPANT_ID})

    @classmethod
    def unstored(cls) -> OccupantIds:
        """Ids from a secret of this process only: stable until it stops."""
        return cls(secrets.token_bytes(_SECRET_BYTES))
