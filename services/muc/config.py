"""Room configuration (XEP-0045 §10.2): the settings, their form, and what a submit changes.

The form carries the standard ``muc#roomconfig_*`` fields. Submitting it
yields a new :class:`RoomConfig` and the status codes the change announces
(104 for any change, 170/171 for logging, 172/173 for who sees real JIDs).
"""

from __future__ import annotations

from typing import Any

import attrs
from lxml import etree

from component.errors import StanzaError
from component.forms import Form, as_bool, parse_form
from services.muc.protocol import ROOMCONFIG, ROOMINFO

__all__ = ["RoomConfig", "config_form", "apply_submission", "roominfo_form", "MAX_USERS_OPTIONS"]

WHOIS = ("moderators", "anyone")
ALLOW_PM = ("anyone", "participants", "moderators", "none")
MAX_USERS_OPTIONS = ("10", "20", "30", "50", "100", "200", "500", "1000", "none")


@attrs.define(slots=True)
class RoomConfig:
    """The settings of one room; the defaults are those of a new room."""

    name: str = ""
    description: str = ""
    language: str = ""
    persistent: bool = False
    public: bool = True
    members_only: bool = False
    moderated: bool = False
    password_protected: bool = False
    password: str = ""
    whois: str = "moderators"
    change_subject: bool = False
    allow_pm: str = "anyone"
    allow_invites: bool = False
    max_users: int = 0
    history_length: int = 20
    logging: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-able dict, for storage."""
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoomConfig:
        """Settings read back from storage; unknown keys (from a newer version) are ignored."""
        known = {field.name for field in attrs.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    @property
    def anonymous(self) -> bool:
        """True in semi-anonymous rooms, where only moderators see real JIDs."""
        return self.whois != "anyone"

    @property
    def needs_password(self) -> bool:
        """True when entering takes a password: whenever the room has a secret.

        Clients written for Prosody set only ``muc#roomconfig_roomsecret``
        (Prosody has no other switch); a secret that did not protect the
        room would leave it open to anyone while its owner thinks it closed.
        """
        return bool(self.password)


def config_form(config: RoomConfig, room: str, max_history: int) -> Form:
    """The configuration form of a room, filled with its current settings."""
    form = Form(
        "form",
        ROOMCONFIG,
        title=f"Configuration for {room}",
        instructions="Complete and submit this form to configure the room.",
    )
    form.add("muc#roomconfig_roomname", config.name, type="text-single", label="Title")
    form.add("muc#roomconfig_roomdesc", config.description, type="text-single", label="Description")
    form.add("muc#roomconfig_lang", config.language, type="text-single", label="Language of discussion")
    form.add("muc#roomconfig_persistentroom", config.persistent, type="boolean", label="Persistent (stays when empty)")
    form.add("muc#roomconfig_publicroom", config.public, type="boolean", label="Listed in the directory of rooms")
    form.add("muc#roomconfig_membersonly", config.members_only, type="boolean", label="Only members may enter")
    form.add("muc#roomconfig_moderatedroom", config.moderated, type="boolean", label="Moderated (visitors need voice)")
    form.add(
        "muc#roomconfig_passwordprotectedroom", config.needs_password, type="boolean", label="Entering needs a password"
    )
    form.add("muc#roomconfig_roomsecret", config.password, type="text-private", label="Password")
    form.add(
        "muc#roomconfig_whois",
        config.whois,
        type="list-single",
        label="Who may see real JIDs",
        options=[("Moderators only", "moderators"), ("Anyone", "anyone")],
    )
    form.add("muc#roomconfig_changesubject", config.change_subject, type="boolean", label="Participants may change the subject")
    form.add(
        "muc#roomconfig_allowpm",
        config.allow_pm,
        type="list-single",
        label="Who may send private messages",
        options=[("Anyone", "anyone"), ("Participants", "participants"), ("Moderators", "moderators"), ("Nobody", "none")],
    )
    form.add("muc#roomconfig_allowinvites", config.allow_invites, type="boolean", label="Occupants may invite others")
    form.add(
        "muc#roomconfig_maxusers",
        str(config.max_users) if config.max_users else "none",
        type="list-single",
        label="Maximum number of occupants",
        options=[(None if value != "none" else "No limit", value) for value in MAX_USERS_OPTIONS],
    )
    form.add(
        "muc#roomconfig_historylength",
        str(config.history_length),
        type="text-single",
        label=f"Messages of history to keep (at most {max_history})",
    )
    form.add("muc#roomconfig_enablelogging", config.logging, type="boolean", label="Keep a public log of the discussion")
    return form


def _text(values: dict[str, list[str]], var: str, default: str) -> str:
    found = values.get(var)
    if found is None:
        return default
    return found[0] if found else ""


def _choice(values: dict[str, list[str]], var: str, default: str, allowed: tuple[str, ...]) -> str:
    value = _text(values, var, default)
    if value not in allowed:
        raise StanzaError("not-acceptable", text=f"{var} must be one of {', '.join(allowed)}")
    return value


def _int(values: dict[str, list[str]], var: str, default: int, none_value: int | None = None) -> int:
    text = _text(values, var, str(default)).strip()
    if none_value is not None and text in ("none", "", "0"):
        return none_value
    try:
        number = int(text)
    except ValueError:
        raise StanzaError("not-acceptable", text=f"{var} must be a number") from None
    if number < 0:
        raise StanzaError("not-acceptable", text=f"{var} must not be negative")
    return number


def apply_submission(config: RoomConfig, x: etree._Element, max_history: int) -> tuple[RoomConfig, set[int]]:
    """The settings after a submitted form, and the status codes the change announces.

    An empty submit accepts the current settings (an instant room). A form
    of another FORM_TYPE is a ``bad-request``; an unreadable value is
    ``not-acceptable``.
    """
    form = parse_form(x)
    if form.type != "submit":
        raise StanzaError("bad-request", text="not a submitted form")
    if not form.fields and form.form_type is None:
        return config, set()
    if form.form_type not in (None, ROOMCONFIG):
        raise StanzaError("bad-request", text="the form is not a room configuration")
    values = form.values()

    def flag(var: str, default: bool) -> bool:
        return as_bool(form.get(var), default)

    new = RoomConfig(
        name=_text(values, "muc#roomconfig_roomname", config.name),
        description=_text(values, "muc#roomconfig_roomdesc", config.description),
        language=_text(values, "muc#roomconfig_lang", config.language),
        persistent=flag("muc#roomconfig_persistentroom", config.persistent),
        public=flag("muc#roomconfig_publicroom", config.public),
        members_only=flag("muc#roomconfig_membersonly", config.members_only),
        moderated=flag("muc#roomconfig_moderatedroom", config.moderated),
        password_protected=flag("muc#roomconfig_passwordprotectedroom", config.password_protected),
        password=_text(values, "muc#roomconfig_roomsecret", config.password),
        whois=_choice(values, "muc#roomconfig_whois", config.whois, WHOIS),
        change_subject=flag("muc#roomconfig_changesubject", config.change_subject),
        allow_pm=_choice(values, "muc#roomconfig_allowpm", config.allow_pm, ALLOW_PM),
        allow_invites=flag("muc#roomconfig_allowinvites", config.allow_invites),
        max_users=_int(values, "muc#roomconfig_maxusers", config.max_users, none_value=0),
        history_length=min(_int(values, "muc#roomconfig_historylength", config.history_length), max_history),
        logging=flag("muc#roomconfig_enablelogging", config.logging),
    )
    if new.password_protected and not new.password:
        raise StanzaError("not-acceptable", text="a password-protected room needs a password")
    codes: set[int] = set()
    if new != config:
        codes.add(104)
    if new.logging != config.logging:
        codes.add(170 if new.logging else 171)
    if new.whois != config.whois:
        codes.add(172 if new.whois == "anyone" else 173)
    return new, codes


def roominfo_form(config: RoomConfig, occupants: int, subject: str) -> etree._Element:
    """The ``muc#roominfo`` form that a room's disco#info carries (XEP-0128)."""
    form = Form("result", ROOMINFO)
    form.add("muc#roominfo_description", config.description, label="Description")
    form.add("muc#roominfo_occupants", occupants, label="Number of occupants")
    form.add("muc#roominfo_subject", subject, label="Current subject")
    form.add("muc#roominfo_changesubject", config.change_subject, type="boolean", label="Occupants may change the subject")
    if config.language:
        form.add("muc#roominfo_lang", config.language, label="Language of discussion")
    if config.max_users:
        form.add("muc#roomconfig_maxusers", config.max_users, label="Maximum number of occupants")
    return form.to_element()
