"""The ``netherfield`` command: ``netherfield --version``, ``netherfield check FILE`` and ``netherfield settings``.

Running the component is ``twistd -n netherfield --config FILE``; this
command holds what an operator needs besides.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from component import __version__

__all__ = ["check", "main", "settings"]


def check(path: str) -> list[Exception]:
    """Every problem that would stop the component at *path* from starting, each a one-sentence error.

    Validates every key, reads the secrets, imports the services and checks
    their settings, and opens the storage they need (read-only); connects to
    no XMPP server and changes nothing. A ``ConfigError`` may carry a
    traceback in ``details``.
    """
    import attrs

    from component.app import Netherfield
    from component.config import ConfigError, read_config
    from component.storage import StorageError, check_storage

    config, mistakes = read_config(path)
    problems: list[Exception] = list(mistakes.found)
    if config is None:
        return problems
    needs_storage = False
    # Each service is built on its own, so that every one's problem is told,
    # not only the first.
    for settings in config.components:
        for name in settings.services:
            alone = attrs.evolve(
                settings, services=(name,), options={k: v for k, v in settings.options.items() if k == name}
            )
            try:
                app = Netherfield(attrs.evolve(config, components=(alone,)))
            except ConfigError as error:
                if str(error) not in {str(problem) for problem in problems}:
                    problems.append(error)
                needs_storage = True  # whether it needs storage is unknown; say what is wrong with it anyway
                continue
            needs_storage = needs_storage or any(
                service.migrations for component in app.components for service in component.services
            )
    # With a mistake in the file, the storage it names may not be the one meant.
    if needs_storage and not mistakes.found:
        try:
            check_storage(config.storage.url, config.storage.password)
        except StorageError as error:
            problems.append(error)
    return problems


def settings(services: Sequence[str] = ()) -> list[str]:
    """The settings of each table (all of Netherfield's and the built-in services' when none is named), as lines.

    Each key with what it takes and its default, from the declarations the
    configuration is checked against. A service is named as in ``services``
    (``muc``, ``package.module:Class``, found from the working directory too).
    """
    from pathlib import Path

    from component import config
    from component.app import builtin_services, resolve_service
    from component.options import describe, key_path

    component = 'components."DOMAIN"'
    tables: list[tuple[str, type]] = []
    if not services:
        tables = [
            ("server", config.ServerConfig), ("storage", config.StorageConfig), (component, config.ComponentConfig),
            ("metrics", config.MetricsConfig), ("log", config.LogConfig), ("cluster", config.ClusterConfig),
        ]
    for name in services or builtin_services():
        tables.append((key_path(component, name), resolve_service(name, Path.cwd()).settings_class))
    lines: list[str] = []
    for heading, cls in tables:
        listed = describe(cls)
        lines.extend([f"[{heading}]", *(entry.replace("``", "") for entry in listed or ["(no settings)"]), ""])
    return lines[:-1]


def _settings(arguments: argparse.Namespace) -> int:
    from component.config import ConfigError

    try:
        print("\n".join(settings(arguments.services)))
    except ConfigError as error:
        sys.stderr.write(f"{error.details}netherfield: {error}\n")
        return 1
    return 0


def _check(arguments: argparse.Namespace) -> int:
    problems = check(arguments.file)
    for problem in problems:
        sys.stderr.write(f"{getattr(problem, 'details', '')}netherfield: {problem}\n")
    if problems:
        return 1
    print(f"{arguments.file}: no problems found")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netherfield",
        description="XMPP external components (XEP-0114). Run them with: twistd -n netherfield --config FILE",
    )
    parser.add_argument("--version", action="version", version=f"Netherfield {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    checking = commands.add_parser(
        "check", help="validate a configuration file without connecting; exit 1 on any problem",
        description=check.__doc__,
    )
    checking.add_argument("file", metavar="FILE", help="the TOML configuration file")
    checking.set_defaults(run=_check)
    listing = commands.add_parser(
        "settings", help="list the settings of each table or of the services named, with their defaults",
        description=settings.__doc__,
    )
    listing.add_argument("services", metavar="SERVICE", nargs="*", help="a service, as named in services")
    listing.set_defaults(run=_settings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command with *argv* (default: the process's arguments); return the exit status."""
    arguments = _parser().parse_args(argv)
    status: int = arguments.run(arguments)
    return status
