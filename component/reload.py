"""Reloading the configuration (SIGHUP): what changed between two configurations, and what that asks for.

A component that is new attaches; one that is gone detaches; one whose
connection or framework settings changed (secret, host, port, limits, the
list of services) reconnects as a new component; one whose services'
settings alone changed keeps its connection, and each of its services is
asked to take the new settings (:meth:`Service.reconfigure`). What cannot
change while running (storage, metrics, log, cluster) is reported, not applied.
"""

from __future__ import annotations

from typing import Any

import attrs

from component.config import ComponentConfig, Config

__all__ = ["ReloadPlan", "plan"]


@attrs.frozen
class ReloadPlan:
    """What a reload does, component by component."""

    added: tuple[ComponentConfig, ...] = ()
    removed: tuple[str, ...] = ()
    #: New settings that need a new connection, with the names of what changed.
    reconnected: tuple[tuple[ComponentConfig, tuple[str, ...]], ...] = ()
    #: Only service settings changed, with their keys (``muc.max_history``).
    reconfigured: tuple[tuple[ComponentConfig, tuple[str, ...]], ...] = ()
    #: Sentences about what is not applied until Netherfield restarts.
    not_applied: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """Whether the new configuration changes nothing that is applied."""
        return not (self.added or self.removed or self.reconnected or self.reconfigured)


def plan(old: Config, new: Config) -> ReloadPlan:
    """Compare the running configuration with a new one. Names keys, never values (they may be secrets)."""
    before = {component.domain: component for component in old.components}
    after = {component.domain: component for component in new.components}
    server_changed = _changed(old.server, new.server)
    reconnected = []
    reconfigured = []
    for domain, settings in after.items():
        previous = before.get(domain)
        if previous is None or (previous == settings and not server_changed):
            continue
        changed = [f"server.{name}" for name in server_changed] + [
            name for name in _changed(previous, settings) if name != "options"
        ]
        if changed:
            reconnected.append((settings, tuple(changed)))
        else:
            keys = sorted(
                f"{name}.{key}"
                for name in set(previous.options) | set(settings.options)
                for key in _changed_keys(previous.options.get(name, {}), settings.options.get(name, {}))
            )
            reconfigured.append((settings, tuple(keys)))
    not_applied = tuple(
        f"{section} changed; restart Netherfield to apply it"
        for section in ("storage", "metrics", "log", "cluster")
        if getattr(old, section) != getattr(new, section)
    )
    return ReloadPlan(
        added=tuple(settings for domain, settings in after.items() if domain not in before),
        removed=tuple(domain for domain in before if domain not in after),
        reconnected=tuple(reconnected),
        reconfigured=tuple(reconfigured),
        not_applied=not_applied,
    )


def _changed(old: Any, new: Any) -> list[str]:
    return [field.name for field in attrs.fields(type(old)) if getattr(old, field.name) != getattr(new, field.name)]


def _changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [key for key in old.keys() | new.keys() if key not in old or key not in new or old[key] != new[key]]
