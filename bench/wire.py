"""What every component under test shares: namespaces, addresses, the handshake, the command line.

The driver starts each component as a subprocess with the same arguments, so that the
ceiling, the peers and Netherfield are launched and addressed the same way.
"""

from __future__ import annotations

import argparse
import hashlib

COMPONENT_NS = "jabber:component:accept"
STREAM_NS = "http://etherx.jabber.org/streams"
DISCO_INFO_NS = "http://jabber.org/protocol/disco#info"
MUC_NS = "http://jabber.org/protocol/muc"
MUC_USER_NS = "http://jabber.org/protocol/muc#user"
MUC_OWNER_NS = "http://jabber.org/protocol/muc#owner"
DATA_FORMS_NS = "jabber:x:data"

DEFAULT_DOMAIN = "bench.localhost"
DEFAULT_SECRET = "s3cret"
HOST = "127.0.0.1"


def handshake_digest(stream_id: str, secret: str) -> str:
    """Return the XEP-0114 handshake value: hex SHA-1 of the stream id followed by the secret."""
    return hashlib.sha1((stream_id + secret).encode("utf-8")).hexdigest()


def component_arguments(description: str) -> argparse.ArgumentParser:
    """Return the parser for the options every component under test accepts."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default=HOST, help="address of the driver (default %(default)s)")
    parser.add_argument("--port", type=int, required=True, help="port of the driver")
    parser.add_argument("--domain", default=DEFAULT_DOMAIN, help="component domain")
    parser.add_argument("--secret", default=DEFAULT_SECRET, help="handshake secret")
    return parser
