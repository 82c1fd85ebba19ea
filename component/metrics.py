"""The Prometheus metrics endpoint: what components, storage and services count, over HTTP.

Nothing on the stanza path calls the metrics library. Components, the
storage and services keep plain counters (``Component.received``,
``Storage.latency``, ``Service.samples()``...); :class:`NetherfieldCollector`
reads them when a scrape comes, and :func:`listen` serves them from the
reactor thread, as ``GET /metrics``. This is the only module that imports
``prometheus_client``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort
from twisted.web import pages
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from component.component import Component
from component.stats import Latency, Sample
from component.storage import Storage

__all__ = ["METRIC_NAMES", "MetricsPage", "NetherfieldCollector", "listen", "registry_for", "site_for"]

_PREFIX = "netherfield_"

#: Every metric this module exposes (without the process and Python ones the library adds).
METRIC_NAMES = (
    "netherfield_stanzas_received_total",
    "netherfield_stanzas_sent_total",
    "netherfield_stanza_errors_sent_total",
    "netherfield_stanzas_refused_total",
    "netherfield_multicast_recipients_total",
    "netherfield_stream_errors_total",
    "netherfield_reconnects_total",
    "netherfield_link_up",
    "netherfield_send_queue_length",
    "netherfield_send_queue_dropped_total",
    "netherfield_iq_requests_in_flight",
    "netherfield_iq_timeouts_total",
    "netherfield_storage_transaction_seconds",
    "netherfield_storage_transaction_failures_total",
    "netherfield_muc_rooms_loaded",
    "netherfield_muc_occupants",
    "netherfield_muc_messages_archived_total",
    "netherfield_muc_history_writes_total",
    "netherfield_muc_write_failures_total",
)


class NetherfieldCollector(Collector):
    """Reads the counters of ``components`` and of the storage ``storage()`` returns, at scrape time."""

    def __init__(self, components: Sequence[Component], storage: Callable[[], Storage | None]) -> None:
        self.components = components
        self.storage = storage

    def describe(self) -> list[Metric]:
        # Nothing to describe up front: the registry need not collect at registration.
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self._traffic()
        yield from self._link()
        yield from self._storage()
        yield from self._services()

    def _traffic(self) -> Iterator[Metric]:
        received = _counter("stanzas_received", "Stanzas received from the server, by kind.", "kind")
        sent = _counter("stanzas_sent", "Stanzas sent to the server (or queued for it), by kind.", "kind")
        errors = _counter("stanza_errors_sent", "Stanza errors sent, by condition.", "condition")
        refused = _counter(
            "stanzas_refused",
            "Stanzas refused: oversized-in and oversized-out (over the size limits), own-domain (from our domain).",
            "reason",
        )
        multicast = _counter(
            "multicast_recipients",
            "Recipients reached through the server's multicast service (XEP-0033), one stanza for many.",
        )
        for component in self.components:
            domain = str(component.jid)
            if component.multicast is not None:
                multicast.add_metric([domain], component.multicast.recipients)
            for kind in ("message", "presence", "iq"):
                received.add_metric([domain, kind], component.received[kind])
                sent.add_metric([domain, kind], component.sent[kind])
            for condition, count in sorted(component.errors_sent.items()):
                errors.add_metric([domain, condition], count)
            for reason in ("oversized-in", "oversized-out", "own-domain"):
                refused.add_metric([domain, reason], component.refused[reason])
        yield from (received, sent, errors, refused, multicast)

    def _link(self) -> Iterator[Metric]:
        stream_errors = CounterMetricFamily(
            _PREFIX + "stream_errors",
            "Stream errors that ended a link, by who sent them (netherfield or server) and condition.",
            labels=["domain", "sent_by", "condition"],
        )
        reconnects = _counter("reconnects", "Connection attempts after a failed one or a lost link.")
        link_up = _gauge("link_up", "1 while the domain is attached to the server, else 0.")
        queue = _gauge("send_queue_length", "Sends waiting for the link to come back.")
        dropped = _counter("send_queue_dropped", "Stanzas dropped from the full send queue.")
        in_flight = _gauge("iq_requests_in_flight", "IQ requests sent and waiting for their reply.")
        timeouts = _counter("iq_timeouts", "IQ requests that got no reply in time.")
        for component in self.components:
            domain = str(component.jid)
            for (sent_by, condition), count in sorted(component.stream_errors.items()):
                stream_errors.add_metric([domain, sent_by, condition], count)
            reconnects.add_metric([domain], component.reconnects)
            link_up.add_metric([domain], 1 if component.link is not None else 0)
            queue.add_metric([domain], component.queued)
            dropped.add_metric([domain], component.dropped)
            in_flight.add_metric([domain], len(component.iq))
            timeouts.add_metric([domain], component.iq.timeouts)
        yield from (stream_errors, reconnects, link_up, queue, dropped, in_flight, timeouts)

    def _storage(self) -> Iterator[Metric]:
        # Only storages that time their transactions (every real backend) have it.
        latency = getattr(self.storage(), "latency", None)
        if not isinstance(latency, Latency):
            return
        buckets = [(floatToGoString(bound), count) for bound, count in latency.cumulative()]
        yield HistogramMetricFamily(
            _PREFIX + "storage_transaction_seconds",
            "Database transactions, from the call to the result (waiting for a worker thread included).",
            buckets=buckets,
            sum_value=latency.seconds,
        )
        yield CounterMetricFamily(
            _PREFIX + "storage_transaction_failures", "Database transactions that failed.", value=latency.failures
        )

    def _services(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        labels: dict[str, tuple[str, ...]] = {}
        values: dict[str, list[tuple[list[str], float]]] = defaultdict(list)
        for component in self.components:
            for service in component.services:
                for sample in service.samples():
                    names = ("domain", *(name for name, _ in sample.labels))
                    if sample.name not in families:
                        families[sample.name] = _family(sample, names)
                        labels[sample.name] = names
                    elif labels[sample.name] != names:
                        continue  # a service disagreeing with another on labels; keep the first
                    values[sample.name].append(([str(component.jid), *(v for _, v in sample.labels)], sample.value))
        for name, family in families.items():
            for label_values, value in values[name]:
                family.add_metric(label_values, value)  # type: ignore[attr-defined]
            yield family


def _counter(name: str, documentation: str, *labels: str) -> CounterMetricFamily:
    return CounterMetricFamily(_PREFIX + name, documentation, labels=["domain", *labels])


def _gauge(name: str, documentation: str, *labels: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(_PREFIX + name, documentation, labels=["domain", *labels])


def _family(sample: Sample, labels: tuple[str, ...]) -> Metric:
    kind = CounterMetricFamily if sample.kind == "counter" else GaugeMetricFamily
    return kind(_PREFIX + sample.name, sample.help, labels=list(labels))


def registry_for(components: Sequence[Component], storage: Callable[[], Storage | None]) -> CollectorRegistry:
    """A registry of our own: Netherfield's metrics, and the process's and Python's as the library gives them."""
    registry = CollectorRegistry()
    registry.register(NetherfieldCollector(components, storage))
    ProcessCollector(registry=registry)  # reads /proc; on other systems it reports nothing
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class MetricsPage(Resource):
    """``GET /metrics``: the registry in Prometheus's text format, built in the reactor thread."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        Resource.__init__(self)
        self.registry = registry

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(self.registry)


class _QuietSite(Site):
    # A scrape every few seconds would put an access line in the log each time.
    noisy = False

    def __init__(self, root: IResource) -> None:
        Site.__init__(self, root)

    def log(self, request: Any) -> None:
        pass


class _Root(Resource):
    def __init__(self) -> None:
        Resource.__init__(self)

    def getChild(self, path: bytes, request: Request) -> IResource:
        return pages.notFound()


def site_for(registry: CollectorRegistry) -> Site:
    """The HTTP site: ``/metrics`` and nothing else."""
    root = _Root()
    root.putChild(b"metrics", MetricsPage(registry))
    return _QuietSite(root)


def listen(reactor: Any, host: str, port: int, registry: CollectorRegistry) -> Deferred[IListeningPort]:
    """Serve ``registry`` at ``http://host:port/metrics``; fires with the listening port."""
    if ":" in host:
        endpoint: Any = endpoints.TCP6ServerEndpoint(reactor, port, interface=host)
    else:
        endpoint = endpoints.TCP4ServerEndpoint(reactor, port, interface=host)
    result: Deferred[IListeningPort] = endpoint.listen(site_for(registry))
    return result
