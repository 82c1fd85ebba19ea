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

from twisted.application.service import Service as TwistedService
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.logger import ILogObserver, Logger
from twisted.python.components import Componentized
from twisted.python.failure import Failure

from component import metrics
from component.component import Component
from component.config import ComponentConfig, Config, ConfigError
from component.connection import ComponentConnector
from component.jid import parse_jid
from component.service import Service
from component.storage import StorageError, open_storage

__all__ = ["Netherfield", "StartupError", "resolve_service"]

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
                f"there is no service called {name!r}: the built-in ones are {', '.join(_builtin_services())},"
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


def _builtin_services() -> list[str]:
    # Found by name, like the services themselves: component/ does not import services/.
    spec = importlib.util.find_spec("services")
    paths = list(spec.submodule_search_locations or []) if spec is not None else []
    return sorted(module.name for module in pkgutil.iter_modules(paths) if module.ispkg)


class Netherfield(TwistedService):
    """Runs every configured component: services first, then the connections."""

    def __init__(self, config: Config, reactor: Any = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.config = config
        self.reactor = reactor
        self.components: list[Component] = []
        self.connectors: list[ComponentConnector] = []
        self.storage: Any = None
        #: The sentence saying why startup failed, once it has.
        self.failure: str | None = None
        self._started: list[Service] = []
        self._starting: defer.Deferred[None] | None = None
        #: Where the log goes, filtered to ``[log] level``; twistd's plugin sets it.
        self.log_observer: ILogObserver | None = None
        #: The metrics endpoint, once it listens (``[metrics] listen``).
        self.metrics_port: IListeningPort | None = None
        for component_config in config.components:
            self._build(component_config)

    def _build(self, settings: ComponentConfig) -> None:
        server = self.config.server
        component = Component(
            settings.domain,
            clock=self.reactor,
            iq_timeout=settings.iq_timeout,
            queue_limit=settings.queue_limit,
            max_outgoing_bytes=settings.max_outgoing_bytes,
            output_limit=settings.output_limit,
            server_domain=server.domain,
            ping_interval=server.ping_interval,
            ping_timeout=server.ping_timeout,
            admins=[parse_jid(admin) for admin in settings.admins],
        )
        for name in settings.services:
            service_class = resolve_service(name, self.config.directory)
            options = settings.options.get(name, {})
            for key in options:
                if key not in service_class.option_keys:
                    raise ConfigError(
                        f'components."{settings.domain}".{name}.{key} is not a setting of the {name} service'
                    )
            component.add_service(service_class(component, options))
        self.components.append(component)
        self.connectors.append(
            ComponentConnector(
                component,
                settings.host,
                settings.port,
                settings.secret,
                reactor=self.reactor,
                initial_delay=server.reconnect_initial,
                max_delay=server.reconnect_max,
                max_stanza_bytes=settings.max_stanza_bytes,
                max_depth=settings.max_depth,
                output_limit=settings.output_limit,
            )
        )

    def setServiceParent(self, parent: Any) -> None:
        super().setServiceParent(parent)
        # twistd starts logging to the application's ILogObserver, if it has one.
        if self.log_observer is not None and isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, self.log_observer)

    def startService(self) -> None:
        super().startService()
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
        if migrations:
            storage = self.config.storage
            self.storage = await open_storage(
                storage.url, migrations=list(migrations.values()), password=storage.password, reactor=self.reactor
            )
            for component in self.components:
                component.storage = self.storage
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
        settings = self.config.metrics
        if settings.host is None:
            return
        where = f"[{settings.host}]:{settings.port}" if ":" in settings.host else f"{settings.host}:{settings.port}"
        registry = metrics.registry_for(self.components, lambda: self.storage)
        try:
            self.metrics_port = await metrics.listen(self.reactor, settings.host, settings.port, registry)
        except CannotListenError as error:
            reason = getattr(error.socketError, "strerror", None) or str(error.socketError)
            raise StartupError(f"cannot serve metrics at {where} (metrics.listen): {reason}") from None
        log.info("metrics at http://{where}/metrics", where=where)

    async def _start_service(self, component: Component, service: Service) -> None:
        what = f"the {service.name or type(service).__name__} service of {component.jid}"
        try:
            await defer.maybeDeferred(service.start)
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
        super().stopService()
        return defer.ensureDeferred(self._stop())

    async def _stop(self) -> None:
        starting = self._starting
        if starting is not None and not starting.called:
            # Stopping under a start in progress would close the storage or
            # stop a service it is still using: let its current step end.
            # Its errback has already reported any failure.
            await starting
        await defer.gatherResults([connector.stopService() for connector in self.connectors if connector.running])
        for service in reversed(self._started):
            try:
                await defer.maybeDeferred(service.stop)
            except Exception:
                log.failure("stopping the {name} service of {domain} failed", name=service.name,
                            domain=str(service.component.jid))
        self._started.clear()
        if self.metrics_port is not None:
            await defer.maybeDeferred(self.metrics_port.stopListening)
            self.metrics_port = None
        if self.storage is not None:
            await self.storage.close()
