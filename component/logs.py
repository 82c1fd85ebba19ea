"""The log level (``[log] level``): events below it are left out of twistd's log."""

from __future__ import annotations

from typing import Any

from twisted.logger import FilteringLogObserver, ILogObserver, LogLevel, LogLevelFilterPredicate

__all__ = ["at_level", "twistd_observer"]


def at_level(observer: ILogObserver, level: str) -> ILogObserver:
    """``observer``, seeing only events at ``level`` (a twisted.logger level name) and above."""
    return FilteringLogObserver(observer, [LogLevelFilterPredicate(LogLevel.levelWithName(level))])


def twistd_observer(server_options: Any) -> ILogObserver | None:
    """The observer twistd would log to with these options (stdout, ``--logfile`` or ``--syslog``).

    None when twistd is told to use a ``--logger`` of its own, which then
    decides what it shows.
    """
    if server_options.get("logger"):
        return None
    # twistd builds this observer itself only when the application offers
    # none; offering a filtered one means building it the same way.
    from twisted.scripts._twistd_unix import UnixAppLogger

    observer: ILogObserver = UnixAppLogger(server_options)._getLogObserver()
    return observer
