"""Settings declared once: a config table is an attrs class, each setting a field made by :func:`setting`.

A field says its key (the field's name), its default, a one-line doc and
the values it takes (its :class:`Kind`, from the annotation unless given,
and a minimum, a maximum or a list of choices). From those declarations
come the checks (:func:`read`: each mistake one :class:`ConfigError`
sentence naming the key's full path), the defaults, and the README's lists
of settings (:func:`describe`; ``python -m component.options README.rst``
rewrites the lists between ``.. settings: module:Class`` and
``.. end of settings``, and ``--check`` says whether they are current).
"""

from __future__ import annotations

import functools
import importlib
import ipaddress
import math
import re
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs

from component.jid import JID, InvalidJID, parse_jid

__all__ = [
    "ADDRESS", "BARE_JIDS", "BOOLEAN", "DOMAINS", "INTEGER", "LOCALPART", "NUMBER", "PORT", "STORAGE_URL", "STRING",
    "ConfigError", "Declared", "Kind", "Mistakes", "NoSettings", "declared", "describe", "key_path", "read", "setting", "tables_of",
]

T = TypeVar("T")


class ConfigError(Exception):
    """A configuration mistake, phrased as one sentence that names the key.

    ``details`` holds what helps beyond the sentence (a traceback), if anything;
    ``more``, the mistakes found after this one in the same reading.
    """

    def __init__(self, sentence: str, *, details: str = "", more: Sequence[ConfigError] = ()) -> None:
        super().__init__(sentence)
        self.details = details
        self.more = tuple(more)

    def every(self) -> list[ConfigError]:
        """This mistake and those found after it, each on its own."""
        return [ConfigError(str(self), details=self.details), *self.more]


class Mistakes:
    """The mistakes found so far, so that reading goes on after one: each is told, not only the first."""

    def __init__(self) -> None:
        self.found: list[ConfigError] = []

    def attempt(self, step: Callable[[], T], fallback: T) -> T:
        """What ``step`` returns; ``fallback`` when it raises a ConfigError, which is kept."""
        try:
            return step()
        except ConfigError as error:
            self.found.extend(error.every())
            return fallback

    def add(self, sentence: str) -> None:
        """Keep one more mistake."""
        self.found.append(ConfigError(sentence))

    def raise_any(self) -> None:
        """Raise the first mistake kept, carrying the others, if there is one."""
        if self.found:
            first, *rest = self.found
            raise ConfigError(str(first), details=first.details, more=rest)


@attrs.frozen
class Kind:
    """The values a setting takes: their name in a sentence, and how a TOML value becomes the setting's value.

    ``convert(value, path)`` returns the setting's value; it raises
    ``TypeError`` when the TOML value is not of the kind (the sentence then
    says what the key must be), and ``ValueError`` with the rest of the
    sentence when it is, but names something invalid: after the key and a
    colon, or after the key alone when it begins with "must".
    """

    name: str
    convert: Callable[[Any, str], Any]
    #: A value of the kind, as TOML, for the sentences.
    example: str | None = None
    #: A nested table of settings (see :func:`tables_of`), described entry by entry.
    entry: type | None = None

    @property
    def wanted(self) -> str:
        """What a key of this kind must be, in a sentence."""
        return f"{self.name}, e.g. {self.example}" if self.example else self.name


def _integer(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError
    return value


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError
    return float(value)


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise TypeError
    return value


def _boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError
    return value


def _port(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise TypeError
    return value


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError
    return value


def _bare_jids(value: Any, path: str) -> frozenset[JID]:
    found = set()
    for item in _strings(value):
        try:
            found.add(parse_jid(item).bare)
        except InvalidJID:
            raise ValueError(f"{item!r} is not a JID") from None
    return frozenset(found)


def _domains(value: Any, path: str) -> frozenset[str]:
    if not all(_strings(value)):
        raise TypeError
    return frozenset(item.lower() for item in value)


def _localpart(value: Any, path: str) -> str:
    try:
        jid = parse_jid(f"{_string(value, path)}@localhost")
    except InvalidJID:
        raise TypeError from None
    if jid.node is None or jid.domain != "localhost" or jid.resource is not None:
        raise TypeError
    return jid.node


def _domain(value: Any, path: str) -> str:
    """A domain (an empty string for none), as its JID gives it."""
    text = _string(value, path)
    if not text:
        return ""
    try:
        jid = parse_jid(text)
    except InvalidJID:
        raise TypeError from None
    if jid.node is not None or jid.resource is not None:
        raise TypeError
    return jid.domain


def _address(value: Any, path: str) -> tuple[str, int]:
    """``127.0.0.1:9300``, ``[::1]:9300`` or ``localhost:9300`` as (host, port)."""
    host, colon, port_text = _string(value, path).rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not colon or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise TypeError
    if host == "localhost":
        return "127.0.0.1", int(port_text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"must name an IP address or localhost, not {host!r}") from None
    return host, int(port_text)


INTEGER = Kind("a whole number", _integer)
NUMBER = Kind("a number", _number)
STRING = Kind("a string", _string)
BOOLEAN = Kind("true or false", _boolean)
PORT = Kind("a TCP port number", _port)
#: A list of JIDs, read as their bare JIDs.
BARE_JIDS = Kind("a list of JIDs", _bare_jids, '["admin@example.org"]')
#: A list of domains, lowercased.
DOMAINS = Kind("a list of domains", _domains, '["example.org"]')
def _storage_url(value: Any, path: str) -> str:
    url = _string(value, path)
    if not url.startswith(("sqlite:", "postgresql:", "postgres:")):
        raise ValueError(f"must start with sqlite:/// or postgresql://, not {url!r}")
    return url


#: One domain, or the empty string for none.
DOMAIN = Kind("a domain", _domain, '"multicast.example.org"')
#: An IP address (or localhost) and a TCP port, read as (host, port).
ADDRESS = Kind("an address and a TCP port", _address, '"127.0.0.1:9300"')
#: A database URL Netherfield opens (see :mod:`component.storage`).
STORAGE_URL = Kind("a database URL", _storage_url)
#: The part of a JID before the ``@``.
LOCALPART = Kind("a valid localpart", _localpart)

_BY_TYPE: dict[Any, Kind] = {int: INTEGER, float: NUMBER, str: STRING, bool: BOOLEAN}


def tables_of(entry: type, what: str) -> Kind:
    """A table holding one table or more of ``entry``'s settings, by name (``[...bots.news]``), read as a dict.

    ``what`` names one of them in sentences (``a notices bot``).
    """

    def convert(value: Any, path: str) -> dict[str, Any]:
        if not value or not isinstance(value, dict):
            raise TypeError
        return {name: read(entry, table, key_path(path, name), belongs=f"of {what}") for name, table in value.items()}

    return Kind(f"a table with one table per {what.split()[-1]}", convert, entry=entry)


@attrs.frozen
class Setting:
    """What :func:`setting` records about a field (in its metadata)."""

    doc: str
    kind: Kind | None = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] = ()
    #: The default as the docs say it, when the declared one does not tell (``None``: "the server's domain").
    shown: str | None = None


_KEY = "netherfield.setting"


def setting(
    default: Any = attrs.NOTHING,
    doc: str = "",
    *,
    kind: Kind | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: Sequence[Any] = (),
    shown: str | None = None,
) -> Any:
    """A field that is a setting: its key is the field's name. Without a default the key is required."""
    if not doc or "\n" in doc:
        raise ValueError("a setting needs a one-line doc")
    declaration = Setting(doc, kind, minimum, maximum, tuple(choices), shown)
    return attrs.field(default=default, metadata={_KEY: declaration})


@attrs.frozen
class Declared:
    """One setting of a class, as :func:`declared` finds it."""

    name: str
    default: Any
    doc: str
    kind: Kind
    minimum: float | None
    maximum: float | None
    choices: tuple[Any, ...]
    shown: str | None

    @property
    def required(self) -> bool:
        """Whether the key must be given (it has no default)."""
        return self.default is attrs.NOTHING

    def check(self, value: Any, path: str) -> Any:
        """``value`` as this setting's value, or the ConfigError sentence saying what is wrong with it."""
        try:
            result = self.kind.convert(value, path)
        except TypeError:
            raise ConfigError(f"{path} must be {self.kind.wanted}, not {value!r}") from None
        except ValueError as error:
            rest = str(error)
            raise ConfigError(f"{path} {rest}" if rest.startswith("must") else f"{path}: {rest}") from None
        if self.minimum is not None and result < self.minimum:
            raise ConfigError(f"{path} must be at least {_number_text(self.minimum)}, not {value!r}")
        if self.maximum is not None and result > self.maximum:
            raise ConfigError(f"{path} must be at most {_number_text(self.maximum)}, not {value!r}")
        if self.choices and result not in self.choices:
            raise ConfigError(f"{path} must be one of {', '.join(map(str, self.choices))}, not {value!r}")
        return result


@functools.cache
def declared(cls: type) -> tuple[Declared, ...]:
    """The settings ``cls`` declares, its own first; its fields not made by :func:`setting` are not settings."""
    # Each class's annotations are read in its own module: an inherited setting's type is named there.
    hints = typing.get_type_hints(cls)
    found = []
    # A class's own settings first, then those it inherits (a feature's, say).
    for field in sorted(attrs.fields(cls), key=lambda field: field.inherited):
        declaration: Setting | None = field.metadata.get(_KEY)
        if declaration is None:
            continue
        kind = declaration.kind or _kind_of(hints.get(field.name, field.type))
        if kind is None:
            raise TypeError(f"{cls.__name__}.{field.name} needs a kind: its type is not int, float, str or bool")
        item = Declared(
            field.name, field.default, declaration.doc, kind, declaration.minimum, declaration.maximum,
            declaration.choices, declaration.shown,
        )
        _check_default(item, f"{cls.__name__}.{field.name}")
        found.append(item)
    return tuple(found)


def _check_default(item: Declared, where: str) -> None:
    """A declaration's own mistakes, told when its class is first read: a default its checks would refuse."""
    default = item.default
    if default is None or default is attrs.NOTHING:
        if item.shown is None and default is None:
            raise TypeError(f"{where} defaults to None: say what that means with shown=")
        return
    if (item.minimum is not None and default < item.minimum) or (item.maximum is not None and default > item.maximum):
        raise TypeError(f"{where} defaults to {default!r}, outside its own bounds")
    if item.choices and default not in item.choices:
        raise TypeError(f"{where} defaults to {default!r}, which is none of its choices")


def _kind_of(hint: Any) -> Kind | None:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        others = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        hint = others[0] if len(others) == 1 else None
    return _BY_TYPE.get(hint)


def key_path(path: str, key: str) -> str:
    """The full name of ``key`` in the table at ``path``, quoted as TOML needs it."""
    bare = key.replace("_", "").replace("-", "").isalnum()
    quoted = key if bare else f'"{key}"'
    return f"{path}.{quoted}" if path else quoted


def read(
    cls: type[T],
    table: Any,
    path: str,
    *,
    belongs: str = "Netherfield knows",
    defaults: Mapping[str, Any] | None = None,
    values: Mapping[str, Any] | None = None,
    other_keys: Collection[str] = (),
) -> T:
    """The settings of ``cls`` from the TOML table at ``path``, or a ConfigError: its first mistake, carrying the others.

    A key that is no setting of ``cls`` is refused as "not a setting
    ``belongs``", except ``other_keys``, which the caller reads itself.
    ``defaults`` replaces declared defaults (with values from elsewhere in
    the file); ``values`` fills the fields of ``cls`` that are not settings.
    """
    if not isinstance(table, dict):
        raise ConfigError(f"{path or 'the file'} must be a table")
    settings = declared(typing.cast(type, cls))
    known = {item.name for item in settings}
    mistakes = Mistakes()
    for key in table:
        if key not in known and key not in other_keys:
            mistakes.add(f"{key_path(path, key)} is not a setting {belongs}")
    found = dict(values or {})
    for item in settings:
        key = key_path(path, item.name)
        if item.name in table:
            found[item.name] = mistakes.attempt(functools.partial(item.check, table[item.name], key), None)
        elif defaults is not None and item.name in defaults:
            found[item.name] = defaults[item.name]
        elif item.required:
            mistakes.add(f"{key} must be set: {item.doc}")
    mistakes.raise_any()
    return cls(**found)


@attrs.frozen
class NoSettings:
    """The settings of a service that has none: any key in its table is a mistake."""


# -- the docs ------------------------------------------------------------------


def describe(cls: type, prefix: str = "") -> list[str]:
    """The settings of ``cls`` as reStructuredText bullets, one per key (nested tables key by key)."""
    lines: list[str] = []
    for item in declared(cls):
        name = f"{prefix}{item.name}"
        if item.kind.entry is not None:
            lines.append(_bullet(f"``{name}.NAME``", f"{item.doc}; in each:"))
            # A nested list: a blank line, then indented under its parent.
            lines.extend(["", *(textwrap.indent(entry, "  ") for entry in describe(item.kind.entry, f"{name}.NAME.")),
                          ""])
            continue
        lines.append(_bullet(f"``{name}``", f"{item.doc} ({_values(item)}{_default(item)})"))
    return lines


def _bullet(name: str, text: str) -> str:
    return "\n".join(textwrap.wrap(f"{name}: {text}", width=76, initial_indent="* ", subsequent_indent="  ",
                                   break_on_hyphens=False, break_long_words=False))


def _values(item: Declared) -> str:
    if item.choices:
        return "one of " + ", ".join(f"``{_toml(choice)}``" for choice in item.choices)
    bounds = []
    if item.minimum is not None:
        bounds.append(f"at least {_number_text(item.minimum)}")
    if item.maximum is not None:
        bounds.append(f"at most {_number_text(item.maximum)}")
    return ", ".join([item.kind.name, *bounds])


def _default(item: Declared) -> str:
    if item.required:
        return "; required"
    if item.shown is not None:
        return f"; default: {item.shown}"
    return f"; default ``{_toml(item.default)}``"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, frozenset | tuple | list):
        return "[" + ", ".join(_toml(item) for item in sorted(value, key=str)) + "]"
    return repr(value)


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


_BEGIN = re.compile(r"^(?P<indent> *)\.\. settings: (?P<name>[\w.]+:\w+)(?P<prefix> [\w.]+)?$")
_END = ".. end of settings"


def rewrite(text: str) -> str:
    """``text`` with each list between ``.. settings: module:Class [prefix]`` and ``.. end of settings`` generated again."""
    out: list[str] = []
    lines = iter(text.splitlines())
    for line in lines:
        out.append(line)
        begin = _BEGIN.match(line)
        if begin is None:
            continue
        indent = begin["indent"]
        for rest in lines:
            if rest.strip() == _END:
                break
        else:
            raise ValueError(f"{line.strip()} has no {_END} after it")
        module, _, name = begin["name"].partition(":")
        cls = getattr(importlib.import_module(module), name)
        body = describe(cls, (begin["prefix"] or "").strip())
        out.extend(["", *(textwrap.indent(entry, indent) for entry in body), "", indent + _END])
    return "\n".join(out) + "\n"


def listed(text: str) -> list[str]:
    """The ``module:Class`` names whose settings ``text`` lists."""
    return [match["name"] for match in map(_BEGIN.match, text.splitlines()) if match is not None]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m component.options [--check] FILE...``: rewrite the settings lists, or say which are stale."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    checking = "--check" in arguments
    stale = []
    for name in (argument for argument in arguments if argument != "--check"):
        path = Path(name)
        text = path.read_text(encoding="utf-8")
        new = rewrite(text)
        if new != text:
            stale.append(name)
            if not checking:
                path.write_text(new, encoding="utf-8")
    if checking and stale:
        print(f"settings lists out of date in {', '.join(stale)}: run python -m component.options {' '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
