"""Netherfield: a framework for XMPP external components (XEP-0114) on Twisted and lxml.

The path of a received stanza, module by module:

1. ``connection``: ``ComponentProtocol.dataReceived`` feeds the bytes of one
   read to the ``stream.StreamParser``.
2. ``stream``: the pull parser hands each completed top-level element to
   ``ComponentProtocol._element_received`` (while the element is still in
   the stream), which passes it to ``Component.receive`` once the handshake
   is done.
3. ``component``: ``Component.receive`` parses the addresses into a
   ``stanza.Stanza``, answers IQ results and errors to our own requests
   (``iq.IQTracker``), and asks ``router.Router.locate`` for the entity at
   ``to``: the domain, a registered ``node@domain``, or one a node factory
   makes or loads (a Deferred, for a room read from storage).
4. ``entity``: ``Component._deliver`` calls the entity's ``handle_message``,
   ``handle_presence``, ``handle_error`` or ``handle_iq``; ``handle_iq``
   calls the method marked with ``iq_handler`` for the IQ's type and payload.
5. Back in ``component``: what the handler returns or raises becomes the
   reply (``result_reply``, ``error_reply`` in ``stanza``). Replies and
   whatever an entity sends go through ``Component.send`` /
   ``send_bytes`` to the link, the ``ComponentProtocol``, which writes
   what one read produced once that read is handled (``output`` keeps
   what waits).

Entities and services reach the component only through ``host.Host`` (a
typing Protocol); directed presence is kept in ``directed``, ordered
per-entity work in ``ordering``.

``testing.Harness`` starts at step 1: ``harness.receive`` feeds bytes to a
real ``ComponentProtocol`` on a ``StringTransport``, and ``harness.expect``
parses what it wrote there again, as the server would.
"""

__version__ = "0.1.0"
