"""The small pure pieces of the storage layer: URLs, their redaction, placeholders."""

from __future__ import annotations

import pytest

from component.storage import DEFAULT_URL, StorageError, redact_url
from component.storage.postgres import translate
from component.storage.sqlite import path_from_url


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("postgresql://nf:hunter2@db:5433/nf?sslmode=require", "postgresql://nf:***@db:5433/nf?sslmode=require"),
        ("postgresql://nf@db/nf", "postgresql://nf@db/nf"),
        ("sqlite:///var/lib/n.db", "sqlite:///var/lib/n.db"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:////var/lib/netherfield/n.db", "/var/lib/netherfield/n.db"),
        ("sqlite:///data/n.db", "data/n.db"),
        ("sqlite:n.db", "n.db"),
        ("sqlite:///", "netherfield.db"),
        ("sqlite://", "netherfield.db"),
        (DEFAULT_URL, "netherfield.db"),
        ("SQLITE:///:memory:", ":memory:"),
    ],
)
def test_sqlite_paths(url: str, path: str) -> None:
    assert path_from_url(url) == path


def test_sqlite_url_with_a_host_is_refused() -> None:
    with pytest.raises(StorageError) as info:
        path_from_url("sqlite://somehost/n.db")
    assert str(info.value) == (
        "a SQLite URL names no host: write sqlite:///relative/path.db"
        " or sqlite:////absolute/path.db, not sqlite://somehost/n.db"
    )


def test_placeholders_become_psycopg_ones() -> None:
    assert translate("SELECT a FROM t WHERE b = ? AND c LIKE 'x%?' AND d = ?") == (
        "SELECT a FROM t WHERE b = %s AND c LIKE 'x%%?' AND d = %s"
    )
    assert translate("SELECT 'it''s ?', \"odd?name\", 5 % 2 FROM t WHERE e = ?") == (
        "SELECT 'it''s ?', \"odd?name\", 5 %% 2 FROM t WHERE e = %s"
    )
