"""End-to-end load: XMPP clients behind a real server, its own MUC against Netherfield's."""
