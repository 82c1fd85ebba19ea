"""Netherfield: a framework for XMPP external components (XEP-0114) on Twisted and lxml."""

__version__ = "0.1.0"
