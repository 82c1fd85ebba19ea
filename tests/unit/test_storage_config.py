"""The `[storage]` configuration and the small pure pieces of the storage layer."""

from __future__ import annotations

from pathlib import Path

import pytest

from component.storage import DEFAULT_URL, redact_url
from component.storage.config import PASSWORD_ENV, StorageConfig
from component.storage.postgres import translate
from component.storage.sqlite import path_from_url


def test_section_with_defaults() -> None:
    assert StorageConfig.from_section({}) == StorageConfig(url=DEFAULT_URL)
    assert DEFAULT_URL == "sqlite://netherfield.db"


def test_section_with_every_key() -> None:
    config = StorageConfig.from_section(
        {"url": "postgresql://nf@db/nf", "password_file": "/run/pw", "password_env": "PW"}
    )
    assert config == StorageConfig("postgresql://nf@db/nf", "/run/pw", "PW")


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"url": "sqlite://x", "pasword": "typo"}, "[storage] has unknown keys: pasword"),
        ({"url": 5}, "[storage] url must be a string"),
    ],
)
def test_bad_sections_are_refused(section: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        StorageConfig.from_section(section)
    assert str(info.value) == message


def test_password_from_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    assert StorageConfig("postgresql://nf@db/nf").password() is None
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    assert StorageConfig("postgresql://nf@db/nf").password() == "from-env"
    pwfile = tmp_path / "pw"
    pwfile.write_text("from file\n", encoding="utf-8")
    assert StorageConfig("postgresql://nf@db/nf", password_file=str(pwfile)).password() == "from file"
    with pytest.raises(ValueError, match="cannot read password_file"):
        StorageConfig("postgresql://nf@db/nf", password_file=str(tmp_path / "missing")).password()


def test_config_repr_hides_a_password_in_the_url() -> None:
    config = StorageConfig("postgresql://nf:hunter2@db:5433/nf")
    assert "hunter2" not in repr(config)
    assert "postgresql://nf:***@db:5433/nf" in repr(config)


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
        ("sqlite:///var/lib/netherfield/n.db", "/var/lib/netherfield/n.db"),
        ("sqlite://data/n.db", "data/n.db"),
        ("sqlite:n.db", "n.db"),
        ("sqlite://", "netherfield.db"),
        ("SQLITE://:memory:", ":memory:"),
    ],
)
def test_sqlite_paths(url: str, path: str) -> None:
    assert path_from_url(url) == path


def test_placeholders_become_psycopg_ones() -> None:
    assert translate("SELECT a FROM t WHERE b = ? AND c LIKE 'x%?' AND d = ?") == (
        "SELECT a FROM t WHERE b = %s AND c LIKE 'x%%?' AND d = %s"
    )
    assert translate("SELECT 'it''s ?', \"odd?name\", 5 % 2 FROM t WHERE e = ?") == (
        "SELECT 'it''s ?', \"odd?name\", 5 %% 2 FROM t WHERE e = %s"
    )
