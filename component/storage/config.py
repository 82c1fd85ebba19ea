"""The ``[storage]`` section of the configuration.

::

    [storage]
    url = "postgresql://netherfield@db.example/netherfield"
    password_file = "/run/secrets/netherfield-db"   # or the environment variable

The password is read when the database is opened and kept nowhere else: not in
this value, not in its repr, not in a log.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred

from component.storage import (
    DEFAULT_URL,
    Migrations,
    Storage,
    open_storage,
    redact_url,
)

PASSWORD_ENV = "NETHERFIELD_STORAGE_PASSWORD"
"""The environment variable that holds the password when no file is named."""

_KEYS = {"url", "password_file", "password_env"}


@attrs.frozen
class StorageConfig:
    """Where the data lives and where its password comes from."""

    url: str = attrs.field(default=DEFAULT_URL, repr=redact_url)
    password_file: str | None = None
    password_env: str = PASSWORD_ENV

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> StorageConfig:
        """Read a parsed ``[storage]`` section; unknown or mistyped keys are errors."""
        unknown = set(section) - _KEYS
        if unknown:
            raise ValueError(f"[storage] has unknown keys: {', '.join(sorted(unknown))}")
        for key, value in section.items():
            if not isinstance(value, str):
                raise ValueError(f"[storage] {key} must be a string")
        return cls(**section)

    def password(self) -> str | None:
        """The database password from the file or the environment, if any."""
        if self.password_file is not None:
            try:
                with open(self.password_file, encoding="utf-8") as f:
                    return f.read().rstrip("\r\n")
            except OSError as e:
                raise ValueError(
                    f"[storage] cannot read password_file {self.password_file}:"
                    f" {e.strerror}"
                ) from e
        return os.environ.get(self.password_env) or None

    def open(
        self, migrations: Sequence[Migrations] = (), reactor: Any = None
    ) -> Deferred[Storage]:
        """Open the configured database and bring it up to date."""
        password = None if self.url.lower().startswith("sqlite:") else self.password()
        return open_storage(
            self.url, migrations=migrations, password=password, reactor=reactor
        )
