"""Peer components on other XMPP libraries, answering the echo and disco#info scenarios."""
