"""A room's vCard (XEP-0054) and the avatar hash it yields (XEP-0153), as Prosody's ``mod_vcard_muc`` keeps them.

The owner sets a ``vcard-temp`` vCard on the room's bare JID; anyone may get
it. Its photo's SHA-1 (of the decoded ``BINVAL``, in hex) is the avatar hash
the room announces in a ``vcard-temp:x:update`` presence from its bare JID
and in ``muc#roominfo_avatarhash``. A vCard is kept serialised, at most
``max_vcard_bytes`` of it, with the room's settings.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

import attrs
from lxml import etree

from component.errors import StanzaError
from services.muc.protocol import PARSER

__all__ = [
    "DEFAULT_MAX_VCARD_BYTES", "VCARD", "VCARD_TAG", "VCARD_UPDATE", "RoomVCard", "parse_vcard", "photo_hash", "update_element",
]

VCARD = "vcard-temp"
VCARD_TAG = f"{{{VCARD}}}vCard"
VCARD_UPDATE = "vcard-temp:x:update"
#: A vCard larger than this, serialised, is refused: an avatar of about 90 KB fits.
DEFAULT_MAX_VCARD_BYTES = 128 * 1024


@attrs.frozen
class RoomVCard:
    """A room's vCard, serialised, and the SHA-1 of its photo ('' without one)."""

    xml: bytes
    photo_hash: str

    def element(self) -> etree._Element:
        """A fresh copy of the vCard, for a reply."""
        return etree.fromstring(self.xml, PARSER)


def parse_vcard(vcard: etree._Element, max_bytes: int) -> RoomVCard | None:
    """The vCard an owner set (None when it is empty: the room has none), or the error for it.

    Too large a vCard is ``policy-violation`` (as too large a message is); a photo whose ``BINVAL`` is
    not base64 is ``bad-request``, for its hash could not be computed.
    """
    if len(vcard) == 0 and not (vcard.text or "").strip():
        return None
    xml = etree.tostring(vcard, encoding="utf-8")
    if max_bytes and len(xml) > max_bytes:
        raise StanzaError("policy-violation", text=f"the vCard is too large (limit {max_bytes} bytes)")
    return RoomVCard(xml, photo_hash(vcard))


def photo_hash(vcard: etree._Element) -> str:
    """The hex SHA-1 of a vCard's photo, '' without one; ``bad-request`` when it is not base64."""
    binval = vcard.findtext(f"{{{VCARD}}}PHOTO/{{{VCARD}}}BINVAL")
    if binval is None:
        return ""
    try:
        photo = base64.b64decode("".join(binval.split()), validate=True)
    except (binascii.Error, ValueError):
        raise StanzaError("bad-request", text="the photo's BINVAL is not base64") from None
    return hashlib.sha1(photo).hexdigest() if photo else ""  # XEP-0153 names SHA-1


def update_element(photo_hash: str) -> etree._Element:
    """``<x xmlns='vcard-temp:x:update'><photo>hash</photo></x>``; an empty photo says there is none (XEP-0153 §3.1)."""
    x = etree.Element(f"{{{VCARD_UPDATE}}}x", nsmap={None: VCARD_UPDATE})
    photo = etree.SubElement(x, f"{{{VCARD_UPDATE}}}photo")
    if photo_hash:
        photo.text = photo_hash
    return x
