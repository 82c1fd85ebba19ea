"""The twistd plugin: ``twistd -n netherfield --config FILE``."""

from __future__ import annotations

import sys
from typing import Any

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from twisted.python import usage
from zope.interface import implementer


class Options(usage.Options):
    """Command-line options of ``twistd netherfield``."""

    synopsis = "--config FILE"
    longdesc = (
        "Attach the XMPP component domains described in a TOML configuration file "
        "to their XMPP server (XEP-0114) and run their services."
    )
    optParameters = [["config", "c", None, "The TOML configuration file.", str]]

    def postOptions(self) -> None:
        if not self["config"]:
            raise usage.UsageError("--config FILE is required")


@implementer(IServiceMaker, IPlugin)
class NetherfieldServiceMaker:
    """Builds the Netherfield service from its configuration file."""

    tapname = "netherfield"
    description = "XMPP external components (XEP-0114): multi-user chat, bots and gateways."
    options = Options

    def makeService(self, options: Any) -> Any:
        from component.app import Netherfield
        from component.config import ConfigError, load_config

        try:
            return Netherfield(load_config(options["config"]))
        except ConfigError as error:
            # One sentence and a non-zero exit, before anything connects.
            sys.stderr.write(f"netherfield: {error}\n")
            raise SystemExit(2) from None


serviceMaker = NetherfieldServiceMaker()
