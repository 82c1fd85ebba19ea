"""The twistd plugin: ``twistd -n netherfield --config FILE``."""

from __future__ import annotations

import atexit
import logging
import os
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

    def opt_version(self) -> None:
        """Print Netherfield's version and exit."""
        from component import __version__

        print(f"Netherfield {__version__}")
        sys.exit(0)

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
            service = Netherfield(load_config(options["config"]), path=options["config"])
        except ConfigError as error:
            # One sentence a mistake and a non-zero exit, before anything connects.
            for mistake in error.every():
                sys.stderr.write(f"{mistake.details}netherfield: {mistake}\n")
            raise SystemExit(2) from None
        atexit.register(_exit_if_failed, service)
        _filter_log(service, options)
        _reload_on_hangup(service)
        return service


def _reload_on_hangup(service: Any) -> None:
    """SIGHUP reads the configuration file again (``Netherfield.reload``), in the reactor's thread."""
    import signal

    from twisted.internet import reactor

    def hangup(signum: int, frame: Any) -> None:
        reactor.callFromThread(service.reload)  # type: ignore[attr-defined]

    # Once running: twistd installs its own signal handlers while starting.
    reactor.callWhenRunning(signal.signal, signal.SIGHUP, hangup)  # type: ignore[attr-defined]


def _filter_log(service: Any, options: Any) -> None:
    """Log at ``[log] level`` and above, wherever twistd logs."""
    from component.logs import at_level, twistd_observer

    server_options = getattr(options, "parent", None)
    observer = twistd_observer(server_options) if server_options is not None else None
    if observer is not None:
        service.log_observer = at_level(observer, service.config.log.level)


def _exit_if_failed(service: Any) -> None:
    """After twistd has shut down, turn a failed startup into exit status 1.

    twistd has no way to set the exit status (twisted/twisted#11335) and
    always exits 0 once its reactor stops; a supervisor such as systemd's
    ``Restart=on-failure`` must see the failure. This runs after twistd
    has removed its pidfile and flushed its log.
    """
    if service.failure is None:
        return
    # os._exit skips the atexit handlers registered before this one.
    logging.shutdown()
    # twistd may have pointed sys.stderr at its log, which is closed by now.
    for stream in (sys.stdout, sys.stderr, sys.__stdout__):
        if stream is not None:
            stream.flush()
    if sys.__stderr__ is not None:
        sys.__stderr__.write(f"netherfield: {service.failure}\n")
        sys.__stderr__.flush()
    os._exit(1)


serviceMaker = NetherfieldServiceMaker()
