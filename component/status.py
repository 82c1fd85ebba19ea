"""The status command: how one component domain is doing, for its admins (XEP-0050).

Uptime, the link to the server, the send queue and what it dropped, the
stanzas refused (``Component.refused``), and each service's own figures
(what :meth:`Service.samples` reports for the metrics, e.g. the MUC's
rooms and occupants).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from component import __version__
from component.adhoc import Command, Outcome
from component.forms import Form
from component.jid import JID
from component.stanza import stamp

if TYPE_CHECKING:
    from component.component import Component

__all__ = ["STATUS_NODE", "status_command", "duration"]

STATUS_NODE = "urn:netherfield:component#status"
#: Reasons ``Component.refused`` counts, shown even at zero so that the form's shape is stable.
REFUSED_REASONS = ("oversized-in", "oversized-out", "own-domain")


def duration(seconds: float) -> str:
    """``seconds`` as ``[D d ]HH:MM:SS``."""
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02}:{minutes:02}:{secs:02}"
    return f"{days} d {clock}" if days else clock


def status_form(component: Component) -> Form:
    """The status of ``component`` now, as a result form."""
    now = component.clock.seconds()
    form = Form("result", STATUS_NODE, title=f"Status of {component.jid}")

    def add(var: str, label: str, value: float | str) -> None:
        form.add(var, str(value), type="text-single", label=label)

    add("version", "Netherfield version", __version__)
    add("started", "Running since", stamp(component.started_at))
    add("uptime", "Running for", duration(now - component.started_at))
    add("link", "Link to the server", "up" if component.link is not None else "down")
    add("link-since", "Link up or down since", stamp(component.link_changed_at))
    add("queued", "Stanzas waiting for the link", component.queued)
    add("queue-limit", "Most stanzas that wait", component.settings.queue_limit)
    add("dropped", "Stanzas dropped from a full queue", component.dropped)
    add("pending-iqs", "IQ requests waiting for an answer", len(component.iq))
    reasons = list(REFUSED_REASONS) + sorted(set(component.refused) - set(REFUSED_REASONS))
    for reason in reasons:
        add(f"refused-{reason}", f"Stanzas refused: {reason}", component.refused[reason])
    for service in component.services:
        for sample in service.samples():
            labels = ",".join(f"{key}={value}" for key, value in sample.labels)
            var = f"{sample.name}{{{labels}}}" if labels else sample.name
            label = f"{sample.help} ({labels})" if labels else sample.help
            value = sample.value
            add(var, label, int(value) if float(value).is_integer() else value)
    return form


def status_command(component: Component) -> Command:
    """The command at :data:`STATUS_NODE`, for the domain's admins."""

    async def run(sender: JID, form: Form | None) -> Outcome:
        return Outcome(status_form(component))

    return Command(STATUS_NODE, "Show the component's status", component.is_admin, run)
