"""The XML stream: stanzas one by one, RFC 6120 §11.1 restrictions, size and depth limits."""

import gc

import pytest
from lxml import etree

from component.errors import StreamError
from component.stream import StreamLimits, StreamParser

HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
    b"xmlns:stream='http://etherx.jabber.org/streams' id='3BF96D32' from='comp.example.org'>"
)


class Recorder:
    def __init__(self, **limits):
        self.headers = []
        self.elements = []
        self.refused = []
        self.closed = False
        self.parser = StreamParser(
            self.headers.append, self._element, self._close, on_refused=self._refused, limits=StreamLimits(**limits)
        )

    def _element(self, element):
        self.elements.append(etree.tostring(element, with_tail=False))

    def _refused(self, element, reason):
        self.refused.append((etree.tostring(element, with_tail=False), reason))

    def _close(self):
        self.closed = True

    def feed(self, *chunks):
        for chunk in chunks:
            self.parser.feed(chunk)


def condition_of(*chunks, **limits):
    recorder = Recorder(**limits)
    with pytest.raises(StreamError) as caught:
        recorder.feed(*chunks)
    return caught.value.condition


def test_stanzas_arrive_one_at_a_time_across_chunk_boundaries():
    recorder = Recorder()
    stream = HEADER + b"<handshake/> <message from='a@b/c' to='echo@comp'><body>hi &amp; &#65;</body></message>\n<iq/>"
    for index in range(0, len(stream), 7):
        recorder.feed(stream[index : index + 7])
    assert recorder.headers[0].get("id") == "3BF96D32"
    assert [etree.QName(etree.fromstring(e)).localname for e in recorder.elements] == ["handshake", "message", "iq"]
    assert etree.fromstring(recorder.elements[1]).findtext("{jabber:component:accept}body") == "hi & A"
    recorder.feed(b"</stream:stream>")
    assert recorder.closed


def test_handled_stanzas_are_detached_from_the_stream_root():
    recorder = Recorder()
    recorder.feed(HEADER)
    root = recorder.headers[0]
    for _ in range(1000):
        recorder.feed(b"<message from='a@b' to='c@d'><body>x</body></message>  ")
    assert len(root) == 0
    assert not root.text


def test_memory_stays_flat_over_many_stanzas():
    recorder = Recorder()
    recorder.parser._on_element = lambda element: None
    recorder.feed(HEADER)
    chunk = b"<message from='a@b' to='c@d'><body>" + b"y" * 100 + b"</body></message>" * 1
    gc.collect()
    for _ in range(20000):
        recorder.feed(chunk)
    gc.collect()
    before = len(gc.get_objects())
    for _ in range(20000):
        recorder.feed(chunk)
    gc.collect()
    assert len(gc.get_objects()) - before < 100


def test_whitespace_keepalives_are_normal():
    recorder = Recorder()
    recorder.feed(HEADER, b" ", b"\n\n", b"   ", b"<message/>")
    assert len(recorder.elements) == 1


@pytest.mark.parametrize(
    ("chunks", "condition"),
    [
        ((HEADER, b"<message><a></b></message>"), "not-well-formed"),
        ((HEADER, b"<message a='1' a='2'/>"), "not-well-formed"),
        ((b"<?xml version='1.0'?><!DOCTYPE stream>" + HEADER[21:],), "restricted-xml"),
        ((b"<?xml version='1.0'?><", b"!DOCTYPE x [<!ENTITY a 'b'>]>",), "restricted-xml"),
        ((HEADER, b"<message><body>&lol;</body></message>"), "restricted-xml"),
        ((HEADER, b"<message><!-- hidden --></message>"), "restricted-xml"),
        ((HEADER, b"<?evil instruction?>"), "restricted-xml"),
        ((b"<stream xmlns='jabber:component:accept'>",), "invalid-namespace"),
    ],
)
def test_bad_input_gets_the_right_stream_error(chunks, condition):
    assert condition_of(*chunks) == condition


def test_an_oversized_stanza_is_refused_alone_and_the_stream_goes_on():
    recorder = Recorder(max_stanza_bytes=65536)
    recorder.feed(
        HEADER,
        b"<message from='a@b/c' to='room@x' id='big' type='groupchat'><body>",
        b"x" * 70000,
        b"</body><html><p>more</p></html></message><iq id='after'/>",
    )
    assert recorder.refused == [
        (
            b'<message xmlns="jabber:component:accept" xmlns:stream="http://etherx.jabber.org/streams" '
            b'from="a@b/c" to="room@x" id="big" type="groupchat"/>',
            "stanza larger than 65536 bytes",
        )
    ]
    assert [etree.fromstring(e).get("id") for e in recorder.elements] == ["after"]


def test_an_oversized_stanza_fed_at_once_is_refused_without_holding_it():
    recorder = Recorder(max_stanza_bytes=100_000)
    recorder.feed(HEADER)
    root = recorder.headers[0]
    recorder.feed(b"<message id='big'><body>" + b"x" * 10_000_000)
    assert recorder.elements == recorder.refused == []
    # What lxml built of it so far has been dropped as it came.
    (stanza,) = recorder.parser._root
    assert len(etree.tostring(stanza)) < 100_000
    assert root is recorder.headers[0]
    recorder.feed(b"</body></message><message id='next'/>")
    assert [reason for _, reason in recorder.refused] == ["stanza larger than 100000 bytes"]
    assert [etree.fromstring(e).get("id") for e in recorder.elements] == ["next"]


def test_an_oversized_stanza_of_many_children_is_pruned_as_it_comes():
    recorder = Recorder(max_stanza_bytes=4096)
    recorder.feed(HEADER, b"<message id='big'><x>")
    for _ in range(2000):
        recorder.feed(b"<a><b>text</b>tail</a>" * 10)
        (stanza,) = recorder.parser._root
        assert len(etree.tostring(stanza)) < 8192
    recorder.feed(b"</x></message><iq id='after'/>")
    assert [etree.fromstring(e).get("id") for e, _ in recorder.refused] == ["big"]
    assert [etree.fromstring(e).get("id") for e in recorder.elements] == ["after"]


def test_many_small_stanzas_do_not_add_up_to_the_limit():
    recorder = Recorder(max_stanza_bytes=2048)
    recorder.feed(HEADER)
    for _ in range(100):
        recorder.feed(b"<message><body>" + b"x" * 1000 + b"</body></message>")
    assert len(recorder.elements) == 100


def test_too_deep_is_refused_alone():
    recorder = Recorder(max_depth=32)
    recorder.feed(HEADER, b"<message id='deep'>" + b"<a>" * 40 + b"</a>" * 40 + b"</message><iq id='after'/>")
    assert [reason for _, reason in recorder.refused] == ["stanza nested deeper than 32"]
    assert [etree.fromstring(e).get("id") for e in recorder.elements] == ["after"]


def test_deeper_than_the_parser_can_go_ends_the_stream():
    assert condition_of(HEADER, b"<message>" + b"<a>" * 5000) == "policy-violation"


def test_a_second_stream_header_ends_the_stream():
    recorder = Recorder()
    recorder.feed(HEADER, b"<iq id='before'/>")
    with pytest.raises(StreamError) as caught:
        recorder.feed(HEADER.partition(b"?>")[2] + b"<iq id='swallowed'/>")
    assert caught.value.condition == "bad-format"
    assert [etree.fromstring(e).get("id") for e in recorder.elements] == ["before"]


def test_declarations_on_the_server_header_do_not_reach_stanzas():
    recorder = Recorder()
    recorder.feed(
        HEADER.replace(b" id=", b" xmlns:a='urn:" + b"a" * 1000 + b"' xmlns:b='urn:b' id=", 1),
        b"<message from='a@b/c' to='room@x'><body>hi</body></message>",
    )
    assert recorder.headers[0].nsmap["b"] == "urn:b"
    assert recorder.elements == [
        b'<message xmlns="jabber:component:accept" xmlns:stream="http://etherx.jabber.org/streams" '
        b'from="a@b/c" to="room@x"><body>hi</body></message>'
    ]


def test_a_stanza_using_a_prefix_only_the_server_header_declared_ends_the_stream():
    recorder = Recorder()
    recorder.feed(HEADER.replace(b" id=", b" xmlns:a='urn:a' id=", 1))
    with pytest.raises(StreamError) as caught:
        recorder.feed(b"<message><a:x/></message>")
    assert caught.value.condition == "not-well-formed"


@pytest.mark.parametrize("chunk", [1, 7, 100])
def test_the_header_may_arrive_in_pieces(chunk):
    recorder = Recorder()
    stream = HEADER.replace(b" id=", b" xmlns:a='urn:a>b' id=", 1) + b"<iq id='first'/>"
    for index in range(0, len(stream), chunk):
        recorder.feed(stream[index : index + chunk])
    assert recorder.headers[0].get("id") == "3BF96D32"
    assert [etree.fromstring(e).get("id") for e in recorder.elements] == ["first"]


def test_a_self_closing_header_closes_the_stream():
    recorder = Recorder()
    recorder.feed(HEADER[:-1] + b"/>")
    assert recorder.closed and recorder.headers
