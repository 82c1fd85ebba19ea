"""Unique room names (XEP-0307): a fresh room name for a client to create a room under.

The service answers ``<unique/>`` at its own address with a room node nobody
holds: 24 characters drawn from 144 random bits, lower-case, as Prosody's
``mod_muc_unique``, so that a clash with a room that exists, or with the name
handed to anyone else, is too unlikely to matter. Nothing is reserved: the
client creates the room by entering it, as any other.
"""

from __future__ import annotations

import base64
import secrets

from lxml import etree

from component.stanza import Stanza

__all__ = ["MUC_UNIQUE", "UNIQUE", "unique_name"]

MUC_UNIQUE = "http://jabber.org/protocol/muc#unique"
#: The request's payload tag, as the domain dispatches it.
UNIQUE = f"{{{MUC_UNIQUE}}}unique"


def unique_name(stanza: Stanza) -> etree._Element:
    """``<unique xmlns='…muc#unique'>name</unique>`` (XEP-0307 §2)."""
    # URL-safe base64 of 18 bytes: 24 characters, all valid in a JID's local part.
    name = base64.urlsafe_b64encode(secrets.token_bytes(18)).decode("ascii").lower()
    element = etree.Element(UNIQUE, nsmap={None: MUC_UNIQUE})
    element.text = name
    return element
