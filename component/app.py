"""The application: the components and services one configuration file describes.

Builds everything before anything connects, so every configuration mistake
surfaces as a :class:`ConfigError` first. Services are named in the config:
``echo`` is the module ``services.echo``; ``package.module:Class`` names
any other :class:`Service` subclass.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
import traceback
from pathlib import Path
from typing import Any

import attrs
from twisted.application.service import Service as TwistedService
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.logger import ILogObserver, Logger
from twisted.python.components import Componentized
from twisted.python.failure import Failure

from component import metrics
from component.component import Component
from component.config import ComponentConfig, Config, ConfigError, load_config
from component.connection import ComponentConnector
from component.options import key_path
from component.reload import plan
from component.service import Service, start_service
from component.storage import Storage, StorageError, open_storage
from component.storage.leases import LEASE_MIGRATIONS
from component.storage.migrations import apply_migrations

__all__ = ["Netherfield", "StartupError", "builtin_services", "resolve_service"]

log = Logger()


class StartupError(Exception):
    """Netherfield could not start; the message says why in one sentence."""


def resolve_service(name: str, directory: Path | None = None) -> type[Service]:
    """The Service class a config name stands for.

    ``echo`` is ``services.echo``'s ``SERVICE``; ``package.module:Class`` is
    looked up on ``sys.path`` and then in *directory* (the config file's), so
    a service module can sit beside the config file.
    """
    module_name, _, attribute = name.partition(":")
    builtin = not attribute
    if builtin:
        module_name, attribute = f"services.{name}", "SERVICE"
    elif directory is not None and str(directory) not in sys.path:
        sys.path.append(str(directory))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if module_name != missing and not module_name.startswith(missing + "."):
            # The module is there, but something it imports is not.
            raise _failed_import(name, module_name) from None
        if builtin:
            raise ConfigError(
                f"there is no service called {name!r}: the built-in ones are {', '.join(builtin_services())},"
                " and others are named package.module:Class"
            ) from None
        where = f"on the Python path or in {directory}" if directory is not None else "on the Python path"
        raise ConfigError(f"there is no service called {name!r}: no module {module_name} {where}") from None
    except Exception:
        raise _failed_import(name, module_name) from None
    found = getattr(module, attribute, None)
    if found is None:
        raise ConfigError(f"there is no service called {name!r}: the module {module_name} has no {attribute}")
    if not (isinstance(found, type) and issubclass(found, Service)):
        raise ConfigError(f"{name!r} does not name a Netherfield service")
    return found


def _failed_import(name: str, module_name: str) -> ConfigError:
    # Called while handling the exception: its traceback is what helps.
    error = sys.exc_info()[1]
    return ConfigError(
        f"the service {name!r} failed while importing {module_name}: {type(error).__name__}: {error}",
        details=traceback.format_exc(),
    )


def builtin_services() -> list[str]:
    """The names of the services that come with Netherfield (``echo``, ``muc``, ...)."""
    # Found by name, like the services themselves: component/ does not import services/.
    spec = importlib.util.find_spec("services")
    paths = list(spec.submodule_search_locations or []) if spec is not None else []
    return sorted(module.name for module in pkgutil.iter_modules(paths) if module.ispkg)


class Netherfield(TwistedService):
    """Runs every configured component: services first, then the connections."""

    def __init__(self, config: Config, reactor: Any = None, *, path: str | None = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.config = config
        #: The file the configuration came from, read again by :meth:`reload`.
        self.path = path
        self.reactor = reactor
        self.components: list[Component] = []
        self.connectors: list[ComponentConnector] = []
        #: The process's storage, opened when any service declares migrations.
        self.storage: Storage | None = None
        #: The sentence saying why startup failed, once it has.
        self.failure: str | None = None
        self._started: list[Service] = []
        self._starting: defer.Deferred[None] | None = None
        #: Where the log goes, filtered to ``[log] level``; twistd's plugin sets it.
        self.log_observer: ILogObserver | None = None
        #: The metrics endpoint, once it listens (``[metrics] listen``).
        self.metrics_port: IListeningPort | None = None
        self._reloading: defer.Deferred[None] | None = None
        self._reload_again = False
        for component_config in config.components:
            self._build(component_config)

    def _build(self, settings: ComponentConfig) -> None:
        server = self.config.server
        component = Component(settings.domain, settings, server, clock=self.reactor)
        for name in settings.services:
            service_class = resolve_service(name, self.config.directory)
            options = settings.options.get(name, {})
            # Read here first, so that a mistake names the table by the service's name in the file.
            service_class.read_settings(options, key_path(f'components."{settings.domain}"', name), name)
            component.add_service(service_class(component, options))
        self.components.append(component)
        self.connectors.append(
            ComponentConnector(
                component, settings.host, settings.port, settings.secret, reactor=self.reactor, backoff=server,
                limits=settings,
            )
        )

    # -- reloading (SIGHUP) ------------------------------------------------

    def reload(self) -> defer.Deferred[None]:
        """Read the configuration file again and apply what changed (see :mod:`component.reload`).

        A file with a mistake is refused with its sentence, and the running
        configuration stays. Reloads run one at a time, after the start:
        any number asked for while one runs make one more, which reads the
        file as it is then.
        """
        if self._reloading is not None and not self._reloading.called:
            if self._reload_again:
                log.info("reload: one is in progress and another follows it; this one is the same")
            else:
                log.info("reload: one is in progress; this one follows it")
            self._reload_again = True
            return self._reloading
        self._reloading = defer.ensureDeferred(self._reload_file())
        return self._reloading

    async def _reload_file(self) -> None:
        starting = self._starting
        if starting is not None and not starting.called:
            # Under a start in progress a reload would open the storage or
            # attach a component a second time.
            log.info("reload: waiting for the start to finish")
            await starting
        while True:
            self._reload_again = False
            try:
                await self._reload()
            except Exception:
                log.failure("reload: applying the new configuration failed")
            if not self._reload_again:
                return

    async def _reload(self) -> None:
        if self.path is None:
            log.info("reload: skipped, there is no configuration file to read again")
            return
        if not self.running or self.failure is not None:
            log.info("reload: skipped, Netherfield is stopping")
            return
        try:
            new = load_config(self.path)
            # Built whole first, never started: every mistake in the new file
            # surfaces before anything running is touched.
            built = Netherfield(new, self.reactor, path=self.path)
        except ConfigError as error:
            for mistake in error.every():
                log.error(
                    "{details}reload: the new configuration is refused, the running one stays: {sentence}",
                    details=mistake.details, sentence=str(mistake),
                )
            return
        changes = plan(self.config, new)
        for sentence in changes.not_applied:
            log.warn("reload: {sentence}", sentence=sentence)
        if changes.empty:
            log.info("reload: nothing to change")
        fresh = {str(component.jid): index for index, component in enumerate(built.components)}
        reconnect = [settings for settings, _ in changes.reconnected]
        for settings, keys in changes.reconfigured:
            refused = self._reconfigure(settings.domain, built.components[fresh[settings.domain]])
            if refused:
                log.info(
                    "reload: {domain} reconnects ({keys} changed; {services} cannot apply them while running)",
                    domain=settings.domain, keys=", ".join(keys), services=", ".join(refused),
                )
                reconnect.append(settings)
            else:
                log.info("reload: {domain}: {keys} changed, applied without reconnecting",
                         domain=settings.domain, keys=", ".join(keys))
        for settings, names in changes.reconnected:
            log.info("reload: {domain} reconnects ({names} changed)", domain=settings.domain, names=", ".join(names))
        for domain in changes.removed:
            await self._detach(domain)
            log.info("reload: {domain} detached", domain=domain)
        for settings in reconnect:
            await self._detach(settings.domain)
        for settings in (*changes.added, *reconnect):
            if not self.running:
                return  # stopping: _stop waits for this reload and stops what it attached
            index = fresh[settings.domain]
            if await self._attach(built.components[index], built.connectors[index]) and settings in changes.added:
                log.info("reload: {domain} added", domain=settings.domain)
        # What is not applied stays as it runs; a component that failed to
        # attach is not running, so the next reload tries it again.
        running = {str(component.jid) for component in self.components}
        self.config = attrs.evolve(
            new,
            components=tuple(settings for settings in new.components if settings.domain in running),
            storage=self.config.storage, metrics=self.config.metrics, log=self.config.log, cluster=self.config.cluster,
        )

    def _reconfigure(self, domain: str, replacement: Component) -> list[str]:
        """Hand each service of ``domain`` its new settings; the names of those that cannot take them."""
        component = self._component(domain)
        pairs = list(zip(component.services, replacement.services, strict=True))
        changed = [(old, new) for old, new in pairs if old.options != new.options]
        # A service that cannot take its settings means a new connection with
        # the replacement, whatever the others took.
        for old, new in changed:
            if type(old) is not type(new) or not old.reconfigure(new):
                return [old.name or type(old).__name__]
            old.options, old.settings = new.options, new.settings
        return []

    def _component(self, domain: str) -> Component:
        return next(component for component in self.components if str(component.jid) == domain)

    async def _detach(self, domain: str) -> None:
        """Say goodbye, close the stream, stop the services: as on shutdown, for one component."""
        component = self._component(domain)
        index = self.components.index(component)
        connector = self.connectors[index]
        if connector.running:
            await connector.stopService()
        await self._stop_services([s for s in reversed(self._started) if s.component is component])
        del self.components[index]
        del self.connectors[index]

    async def _attach(self, component: Component, connector: ComponentConnector) -> bool:
        """Start the services of a component a reload added, then its connection; whether it did.

        One that cannot start says why and stays out, and the reload goes on.
        """
        try:
            migrations = [m for service in component.services for m in service.migrations]
            if migrations and self.config.cluster.enabled:
                migrations.append(LEASE_MIGRATIONS)
            if migrations:
                if self.storage is None:
                    storage = self.config.storage
                    self.storage = await open_storage(
                        storage.url, migrations=migrations, password=storage.password, reactor=self.reactor
                    )
                else:
                    await apply_migrations(self.storage, migrations)
            for service in component.services:
                await self._start_service(component, service)
        except (StartupError, StorageError) as error:
            log.error("reload: {domain} is not attached: {sentence}", domain=str(component.jid), sentence=str(error))
            await self._stop_services([s for s in reversed(self._started) if s.component is component])
            return False
        self.components.append(component)
        self.connectors.append(connector)
        connector.startService()
        return True

    async def _stop_services(self, services: list[Service]) -> None:
        """Stop started services in the order given; a failure is logged, the others still stop."""
        for service in services:
            try:
                await defer.maybeDeferred(service.stop)
            except Exception:
                log.failure("stopping the {name} service of {domain} failed", name=service.name,
                            domain=str(service.component.jid))
            self._started.remove(service)

    def setServiceParent(self, parent: Any) -> None:
        TwistedService.setServiceParent(self, parent)
        # twistd starts logging to the application's ILogObserver, if it has one.
        if self.log_observer is not None and isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, self.log_observer)

    def startService(self) -> None:
        TwistedService.startService(self)
        self._starting = defer.ensureDeferred(self._start()).addErrback(self._start_failed)

    async def _start(self) -> None:
        # Each step checks self.running: a stopService meanwhile lets the step
        # in progress finish, and then nothing more starts.
        await self._serve_metrics()
        if not self.running:
            return
        migrations = {
            id(m): m for component in self.components for service in component.services for m in service.migrations
        }
        if migrations and self.config.cluster.enabled:
            migrations[id(LEASE_MIGRATIONS)] = LEASE_MIGRATIONS  # the clustered services' leases
        if migrations:
            storage = self.config.storage
            self.storage = await open_storage(
                storage.url, migrations=list(migrations.values()), password=storage.password, reactor=self.reactor
            )
        for component in self.components:
            for service in component.services:
                if not self.running:
                    return
                await self._start_service(component, service)
        if not self.running:
            return
        for connector in self.connectors:
            connector.startService()

    async def _serve_metrics(self) -> None:
        listen = self.config.metrics.listen
        if listen is None:
            return
        host, port = listen
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        registry = metrics.registry_for(self.components, lambda: self.storage)
        try:
            self.metrics_port = await metrics.listen(self.reactor, host, port, registry)
        except CannotListenError as error:
            reason = getattr(error.socketError, "strerror", None) or str(error.socketError)
            raise StartupError(f"cannot serve metrics at {where} (metrics.listen): {reason}") from None
        log.info("metrics at http://{where}/metrics", where=where)

    async def _start_service(self, component: Component, service: Service) -> None:
        what = f"the {service.name or type(service).__name__} service of {component.jid}"
        try:
            await start_service(service, self.storage, self.config.cluster if self.config.cluster.enabled else None)
        except StorageError as error:
            raise StartupError(f"{what} could not start: {error}") from None
        except Exception as error:
            # A bug rather than a setting: the traceback is what helps.
            log.failure("{what} failed to start", what=what)
            raise StartupError(
                f"{what} failed to start with {type(error).__name__}: {error} (the traceback is in the log)"
            ) from None
        self._started.append(service)

    def _start_failed(self, failure: Failure) -> None:
        if failure.check(StartupError, StorageError):
            sentence = failure.getErrorMessage()
        else:
            log.failure("Netherfield could not start", failure)
            sentence = f"Netherfield could not start: {failure.getErrorMessage()}"
        self.failure = sentence
        log.critical("{sentence}", sentence=sentence)
        # A stop() while the reactor is still firing its startup triggers is
        # lost, and the process would stay up doing nothing.
        self.reactor.callLater(0, self._stop_reactor)

    def _stop_reactor(self) -> None:
        if self.reactor.running:
            self.reactor.stop()

    def stopService(self) -> defer.Deferred[None]:
        TwistedService.stopService(self)
        return defer.ensureDeferred(self._stop())

    async def _stop(self) -> None:
        starting = self._starting
        if starting is not None and not starting.called:
            # Stopping under a start in progress would close the storage or
            # stop a service it is still using: let its current step end.
            # Its errback has already reported any failure.
            await starting
        reloading = self._reloading
        if reloading is not None and not reloading.called:
            # Likewise a reload: it attaches nothing more once stopping.
            await reloading
        await defer.gatherResults([connector.stopService() for connector in self.connectors if connector.running])
        await self._stop_services(list(reversed(self._started)))
        if self.metrics_port is not None:
            await defer.maybeDeferred(self.metrics_port.stopListening)
            self.metrics_port = None
        if self.storage is not None:
            await self.storage.close()
