"""A room feature that is one setting of the form (XEP-0045 §10.2): a yes/no `Switch`, or a list of `Roles`.

Most of a room's settings are a boolean of :class:`~services.muc.config.RoomConfig`
set by one ``boolean`` field of the configuration form, and many say in
the room's disco#info which way they are set (``muc_persistent`` or
``muc_temporary``, §6.4). A :class:`Switch` declares that much; the
feature's own rules (who may enter a members-only room, say) are the hooks
it overrides besides. A :class:`Roles` declares a ``list-multi`` field whose
values are roles (whose presence is shown, who may read the member list).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from component.errors import StanzaError
from services.muc.config import RoomConfig
from services.muc.context import RoomContext
from services.muc.feature import ConfigSubmission, Feature, FieldsAt

__all__ = ["FormSetting", "Roles", "Switch"]


class FormSetting(Feature):
    """A feature that is one field of the configuration form, setting one field of the room's configuration.

    A subclass declares ``setting``, ``var``, ``position`` and ``label``.
    """

    #: The :class:`~services.muc.config.RoomConfig` field it sets.
    setting: str = ""
    #: The configuration form's field (``muc#roomconfig_…``).
    var: str = ""
    #: Where the field stands in the form (see :class:`~services.muc.feature.FieldsAt`).
    position: int = 0
    #: The field's label.
    label: str = ""

    def value(self, config: RoomConfig) -> Any:
        """The setting's value in ``config``."""
        return getattr(config, self.setting)


class Switch(FormSetting):
    """A feature whose setting is one boolean of the room's configuration.

    A subclass declares the attributes of :class:`FormSetting` and those
    below, then overrides the hooks the setting acts through.
    """

    #: The disco#info features of a room with the setting on, and off; None when disco says nothing of it.
    disco: tuple[str, str] | None = None
    #: The status codes announcing that the setting turned on, and off (§10.2.1: 170 and 171 for logging),
    #: None when 104 announces it with the other settings.
    codes: tuple[int, int] | None = None

    def __init__(self) -> None:
        if self.codes is not None:
            # A change announced by codes of its own is privacy-related (§10.2.1, Table 6): 104 leaves it out.
            self.privacy_settings = (*self.privacy_settings, self.setting)

    def on(self, config: RoomConfig) -> bool:
        """Whether ``config`` has the setting on."""
        return bool(self.value(config))

    def disco_features(self, room: RoomContext) -> Iterable[str]:
        if self.disco is None:
            return ()
        return (self.disco[0] if self.on(room.config) else self.disco[1],)

    def config_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        fields.add(self.position, self.var, self.on(room.config), type="boolean", label=self.label)

    def configure(self, room: RoomContext, submission: ConfigSubmission, config: RoomConfig) -> Mapping[str, Any]:
        return {self.setting: submission.flag(self.var, self.on(config))}

    def on_config_change(self, room: RoomContext, old: RoomConfig, new: RoomConfig) -> Iterable[int]:
        if self.codes is None or self.on(new) == self.on(old):
            return ()
        return (self.codes[0] if self.on(new) else self.codes[1],)


class Roles(FormSetting):
    """A feature whose setting is a tuple of roles, chosen among ``roles`` by one ``list-multi`` field.

    A subclass declares the attributes of :class:`FormSetting` and
    ``roles``; a submitted role outside ``roles`` refuses the form.
    """

    #: The roles the field offers, in the form's order.
    roles: tuple[str, ...] = ()

    def config_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        fields.add(
            self.position, self.var, self.value(room.config), type="list-multi", label=self.label,
            options=[(None, role) for role in self.roles],
        )

    def configure(self, room: RoomContext, submission: ConfigSubmission, config: RoomConfig) -> Mapping[str, Any]:
        roles = submission.values.get(self.var)
        if roles is None:
            return {}
        if any(role not in self.roles for role in roles):
            raise StanzaError("not-acceptable", text=f"{self.var} takes roles: {', '.join(self.roles)}")
        return {self.setting: roles}
