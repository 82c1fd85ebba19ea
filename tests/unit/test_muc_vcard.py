"""A room's vCard (XEP-0054) and its avatar hash (XEP-0153): parsing and the size limit."""

from __future__ import annotations

import base64
import hashlib

import pytest
from lxml import etree

from component.errors import StanzaError
from services.muc.vcard import parse_vcard, update_element

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")
PHOTO = base64.b64encode(PNG).decode()


def vcard(body: str) -> etree._Element:
    return etree.fromstring(f"<vCard xmlns='vcard-temp'>{body}</vCard>")


def test_the_avatar_hash_is_the_sha1_of_the_photo() -> None:
    # XEP-0153 §2: the hex SHA-1 of the image data, not of its base64.
    folded = "\n".join(PHOTO[i:i + 16] for i in range(0, len(PHOTO), 16))
    parsed = parse_vcard(vcard(f"<FN>The Coven</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>{folded}</BINVAL></PHOTO>"), 0)
    assert parsed is not None
    assert parsed.photo_hash == hashlib.sha1(PNG).hexdigest()
    assert parsed.element().findtext("{vcard-temp}FN") == "The Coven"


def test_a_vcard_without_photo_has_no_hash_and_an_empty_one_is_none() -> None:
    parsed = parse_vcard(vcard("<FN>The Coven</FN>"), 0)
    assert parsed is not None and parsed.photo_hash == ""
    assert parse_vcard(vcard(""), 0) is None


def test_too_large_a_vcard_is_refused() -> None:
    element = vcard(f"<PHOTO><BINVAL>{base64.b64encode(PNG * 10).decode()}</BINVAL></PHOTO>")
    size = len(etree.tostring(element, encoding="utf-8"))
    assert parse_vcard(element, size) is not None
    with pytest.raises(StanzaError) as error:
        parse_vcard(element, size - 1)
    assert error.value.condition == "policy-violation"


def test_a_photo_that_is_not_base64_is_a_bad_request() -> None:
    with pytest.raises(StanzaError) as error:
        parse_vcard(vcard("<PHOTO><BINVAL>not base64!</BINVAL></PHOTO>"), 0)
    assert error.value.condition == "bad-request"


def test_the_update_element() -> None:
    assert etree.tostring(update_element("abc")) == b'<x xmlns="vcard-temp:x:update"><photo>abc</photo></x>'
    assert etree.tostring(update_element("")) == b'<x xmlns="vcard-temp:x:update"><photo/></x>'
