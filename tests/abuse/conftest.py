"""The real-server fixtures, for the abuse tests that run end to end."""

from tests.integration.conftest import component_process, xmpp_server

__all__ = ["component_process", "xmpp_server"]
