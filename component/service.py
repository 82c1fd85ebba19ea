"""Services: the units of behaviour a component domain runs, named in the config.

A service registers its entities with the component's router when it starts,
and may add identities, features and items to the domain's own disco answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from twisted.internet import defer

from component.disco import Identity, Item
from component.jid import JID
from component.options import NoSettings, key_path, read
from component.stanza import Stanza
from component.stats import Sample
from component.storage.migrations import Migrations

if TYPE_CHECKING:
    from component.config import ClusterConfig
    from component.entity import IQResult
    from component.host import Host
    from component.storage.base import Storage

__all__ = ["Service", "start_service"]


class Service:
    """Base class of services. ``options`` is the service's own config table."""

    #: The name the config uses for this service.
    name: ClassVar[str] = ""
    #: The attrs class declaring the service's settings (see :mod:`component.options`):
    #: the keys its config table may hold, their defaults and docs. Others are config errors.
    settings_class: ClassVar[type[Any]] = NoSettings
    #: The storage tables the service needs (``component.storage.Migrations``);
    #: a service that declares some is given the storage, with them applied, when it starts.
    migrations: ClassVar[tuple[Migrations, ...]] = ()
    #: Bare JIDs this service names as its admins: admins of the whole domain too.
    admins: frozenset[JID] = frozenset()
    #: Whether the service shares its work with other instances under ``[cluster]``:
    #: it is then started with the cluster's settings too (``start(storage, cluster)``).
    clustered: ClassVar[bool] = False

    def __init__(self, component: Host, options: dict[str, Any]) -> None:
        #: The domain the service runs in (see :class:`~component.host.Host`).
        self.component = component
        #: The service's table as the config file has it.
        self.options = options
        #: That table read into a :attr:`settings_class` (subclasses narrow its type).
        self.settings: Any = self.read_settings(options, self.table(component))

    @classmethod
    def read_settings(cls, options: dict[str, Any], table: str, name: str | None = None) -> Any:
        """``options``, the table at ``table`` in the config, as a :attr:`settings_class`.

        Each mistake is a :class:`~component.options.ConfigError` naming the
        key under ``table``; ``name`` is the service's name in the config.
        """
        return read(cls.settings_class, options, table, belongs=f"of the {name or cls.name} service")

    def table(self, component: Host) -> str:
        """The dotted name of this service's table in the config, as error sentences name it."""
        return key_path(f'components."{component.jid}"', self.name)

    def start(self, storage: Storage | None = None) -> defer.Deferred[Any] | None:
        """Register entities and open what the service needs.

        A service that declares :attr:`migrations` is given the process's
        storage with them applied (None when it runs without storage, as in
        a test harness given none); any other service is started without it.
        """
        return None

    def stop(self) -> defer.Deferred[Any] | None:
        """Release what :meth:`start` opened."""
        return None

    def reconfigure(self, replacement: Service) -> bool:
        """Take the settings of ``replacement``, this service built from a reloaded configuration.

        Return whether they now apply; by default they do not, and the
        component reconnects with ``replacement`` instead. ``replacement``
        was built and validated, never started. Once this returns True the
        application sets ``self.options`` and ``self.settings`` to
        ``replacement``'s.
        """
        return False

    def domain_identities(self) -> tuple[Identity, ...]:
        """Identities the component domain reports for this service."""
        return ()

    def domain_features(self) -> frozenset[str]:
        """Features the component domain reports for this service."""
        return frozenset()

    def domain_iq_handlers(self) -> Mapping[tuple[str, str], Callable[[Stanza], IQResult]]:
        """IQ requests to the component domain this service answers: (type, payload tag) → handler.

        Read once, when the domain first gets a request no handler of its own
        answers; a handler returns the result payload or raises a ``StanzaError``
        as an entity's does, and its namespace is added to the domain's features.
        """
        return {}

    def domain_items(self, stanza: Stanza) -> list[Item]:
        """Items the component domain lists for this service (its bots, its public rooms)."""
        return []

    def samples(self) -> Iterable[Sample]:
        """What the service counts, read when the metrics endpoint is scraped (none by default)."""
        return ()


def start_service(
    service: Service, storage: Storage | None, cluster: ClusterConfig | None = None
) -> defer.Deferred[Any]:
    """Start ``service``: with ``storage`` when it declares migrations, without when it needs none,
    and with ``cluster`` (``[cluster]``, when this process is one of several instances) when it is clustered."""
    if cluster is not None and service.clustered:
        start: Any = service.start  # a clustered service's start takes the cluster's settings too
        return defer.maybeDeferred(start, storage, cluster)
    if service.migrations:
        return defer.maybeDeferred(service.start, storage)
    return defer.maybeDeferred(service.start)
