"""Whole numbers read from the wire: the value, or the stanza error that says why not."""

from __future__ import annotations

import pytest

from component.errors import StanzaError, whole_number


@pytest.mark.parametrize(("text", "expected"), [("0", 0), ("20", 20), (" 7 ", 7)])
def test_a_whole_number_is_read(text: str, expected: int) -> None:
    assert whole_number(text, "maxstanzas", "bad-request") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("many", "history maxstanzas must be a number"), ("", "history maxstanzas must be a number"),
     ("1.5", "history maxstanzas must be a number"), ("-1", "history maxstanzas must not be negative")],
)
def test_anything_else_is_the_callers_condition(text: str, message: str) -> None:
    with pytest.raises(StanzaError) as raised:
        whole_number(text, "history maxstanzas", "bad-request")
    assert raised.value.condition == "bad-request"
    assert raised.value.text == message


def test_the_condition_is_the_callers() -> None:
    with pytest.raises(StanzaError) as raised:
        whole_number("-3", "muc#roomconfig_maxusers", "not-acceptable")
    assert (raised.value.condition, raised.value.text) == ("not-acceptable", "muc#roomconfig_maxusers must not be negative")
