"""A service for the reconnect test: it sends one message while the link is down.

Config: ``services = ["echo", "tests.integration.link_watcher:LinkWatcher"]`` with
``[components."DOMAIN"."tests.integration.link_watcher:LinkWatcher"] notify = "user@localhost"``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
from twisted.internet import task

from component.options import setting
from component.service import Service
from component.stanza import message


@attrs.frozen
class LinkWatcherSettings:
    """Whom to tell."""

    notify: str = setting(doc="the JID the message goes to")


class LinkWatcher(Service):
    """Checks the link every 50 ms; the first time it is down, sends a chat message to ``notify``."""

    name = "link-watcher"
    settings_class: ClassVar[type[Any]] = LinkWatcherSettings

    def start(self) -> None:
        self.attached_once = False
        self.sent = False
        self.component.on_link_up.append(self._attached)
        self.loop = task.LoopingCall(self._check)
        self.loop.clock = self.component.clock
        self.loop.start(0.05)

    def _attached(self) -> None:
        self.attached_once = True

    def _check(self) -> None:
        if self.component.link is None and self.attached_once and not self.sent:
            self.sent = True
            self.component.send(
                message(f"watcher@{self.component.jid}", self.settings.notify, "sent while the link was down")
            )

    def stop(self) -> Any:
        if self.loop.running:
            self.loop.stop()
        return None
