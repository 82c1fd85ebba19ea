"""JIDs: parsing, normalisation (stringprep), bare/full forms, equality and hashing."""

import pytest

from component.jid import JID, InvalidJID, parse_jid


@pytest.mark.parametrize(
    ("text", "node", "domain", "resource"),
    [
        ("juliet@example.com/balcony", "juliet", "example.com", "balcony"),
        ("Juliet@EXAMPLE.com/Balcony", "juliet", "example.com", "Balcony"),
        ("example.com", None, "example.com", None),
        ("example.com.", None, "example.com", None),
        ("Coven@Chat.Shakespeare.LIT.", "coven", "chat.shakespeare.lit", None),
        ("coven@chat.shakespeare.lit\u3002", "coven", "chat.shakespeare.lit", None),
        ("coven@chat.shakespeare.lit\uff0e/firstwitch", "coven", "chat.shakespeare.lit", "firstwitch"),
        ("coven@chat\uff61shakespeare.lit\uff61", "coven", "chat.shakespeare.lit", None),
        ("example.com/res/with/slashes", None, "example.com", "res/with/slashes"),
        ("room@conference.example.org/ thirdwitch", "room", "conference.example.org", " thirdwitch"),
        ("r\u00e9mi@ex.org", "r\u00e9mi", "ex.org", None),
        ("a@b/c@d", "a", "b", "c@d"),
    ],
)
def test_parses_and_normalises(text, node, domain, resource):
    jid = parse_jid(text)
    assert (jid.node, jid.domain, jid.resource) == (node, domain, resource)


@pytest.mark.parametrize(
    "text",
    ["", "@example.com", "juliet@", "juliet@example.com/", "jul iet@example.com", "a\"b@example.com",
     "example..com", "example.com..", "example.com.\u3002", "x" * 1024 + "@example.com", "juliet@exa mple.com", "a@b/" + "r" * 1100],
)
def test_rejects_malformed(text):
    with pytest.raises(InvalidJID):
        parse_jid(text)


def test_bare_full_equality_and_hash():
    full = parse_jid("Juliet@Example.com/balcony")
    assert full.bare == parse_jid("juliet@example.com")
    assert full.bare.is_bare and not full.is_bare
    assert full == parse_jid("juliet@example.com/balcony")
    assert full != parse_jid("juliet@example.com/Balcony")
    assert len({full, parse_jid("JULIET@example.com/balcony")}) == 1
    assert str(full) == "juliet@example.com/balcony"
    assert full.bare.with_resource("garden") == JID("juliet", "example.com", "garden")


def test_values_are_frozen():
    jid = parse_jid("a@b")
    with pytest.raises(AttributeError):
        jid.node = "c"  # type: ignore[misc]


def test_parse_cache_is_bounded():
    info = parse_jid.cache_info()
    assert info.maxsize is not None and info.maxsize <= 65536


def test_ascii_fast_paths_agree_with_the_stringprep_profiles():
    import random

    from twisted.words.protocols.jabber.xmpp_stringprep import nameprep, nodeprep, resourceprep

    from component import jid as module

    def outcome(function, text):
        try:
            return function(text)
        except (UnicodeError, InvalidJID, IndexError):
            return "error"

    rng = random.Random(6121)
    alphabet = [chr(c) for c in range(0x00, 0x80)]
    weighted = alphabet + list("abcXYZ019-.") * 8
    for _ in range(20000):
        text = "".join(rng.choice(weighted) for _ in range(rng.randint(1, 12)))
        assert outcome(module._prep_node, text) == outcome(nodeprep.prepare, text), text
        assert outcome(module._prep_resource, text) == outcome(resourceprep.prepare, text), text
        assert outcome(module._prep_domain, text) == outcome(lambda t: nameprep.prepare(t).lower(), text), text
