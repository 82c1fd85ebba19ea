"""Data forms (XEP-0004): building forms to send and reading submitted ones."""

from __future__ import annotations

from collections.abc import Iterable

import attrs
from lxml import etree

from component import namespaces as ns
from component.errors import StanzaError

__all__ = ["Field", "Form", "parse_form", "FORM_TYPE"]

FORM_TYPE = "FORM_TYPE"
_X = f"{{{ns.DATA_FORMS}}}x"
_FIELD = f"{{{ns.DATA_FORMS}}}field"
_VALUE = f"{{{ns.DATA_FORMS}}}value"
_OPTION = f"{{{ns.DATA_FORMS}}}option"
_BOOLEAN_TRUE = frozenset({"1", "true"})
_BOOLEAN_FALSE = frozenset({"0", "false"})


@attrs.define
class Field:
    """One form field; ``values`` holds every value as text."""

    var: str | None
    type: str | None = None
    label: str | None = None
    values: list[str] = attrs.field(factory=list)
    options: list[tuple[str | None, str]] = attrs.field(factory=list)
    required: bool = False
    desc: str | None = None

    @property
    def value(self) -> str | None:
        """The first value, or None."""
        return self.values[0] if self.values else None


@attrs.define
class Form:
    """A data form of type form, submit, cancel or result."""

    type: str = "form"
    form_type: str | None = None
    title: str | None = None
    instructions: str | None = None
    fields: list[Field] = attrs.field(factory=list)
    #: The columns of a table of results (XEP-0004 §3.4), and its rows.
    reported: list[Field] = attrs.field(factory=list)
    items: list[list[Field]] = attrs.field(factory=list)

    def add(
        self,
        var: str,
        value: str | bool | int | Iterable[str] | None = None,
        *,
        type: str | None = None,
        label: str | None = None,
        options: Iterable[tuple[str | None, str]] = (),
        desc: str | None = None,
        required: bool = False,
    ) -> Field:
        """Append a field; booleans and ints become their XEP-0004 text."""
        if value is None:
            values: list[str] = []
        elif isinstance(value, bool):
            values = ["1" if value else "0"]
        elif isinstance(value, (str, int)):
            values = [str(value)]
        else:
            values = list(value)
        field = Field(var, type, label, values, list(options), required, desc)
        self.fields.append(field)
        return field

    def get(self, var: str) -> Field | None:
        """The field named ``var``, or None."""
        for field in self.fields:
            if field.var == var:
                return field
        return None

    def values(self) -> dict[str, list[str]]:
        """Every named field's values, FORM_TYPE excluded."""
        return {f.var: f.values for f in self.fields if f.var and f.var != FORM_TYPE}

    def to_element(self) -> etree._Element:
        """The ``<x xmlns='jabber:x:data'/>`` element."""
        x = etree.Element(_X, type=self.type, nsmap={None: ns.DATA_FORMS})
        if self.title is not None:
            etree.SubElement(x, f"{{{ns.DATA_FORMS}}}title").text = self.title
        if self.instructions is not None:
            etree.SubElement(x, f"{{{ns.DATA_FORMS}}}instructions").text = self.instructions
        if self.form_type is not None:
            hidden = etree.SubElement(x, _FIELD, var=FORM_TYPE, type="hidden")
            etree.SubElement(hidden, _VALUE).text = self.form_type
        for field in self.fields:
            self._add_field(x, field)
        if self.reported:
            reported = etree.SubElement(x, f"{{{ns.DATA_FORMS}}}reported")
            for field in self.reported:
                self._add_field(reported, field)
        for row in self.items:
            item = etree.SubElement(x, f"{{{ns.DATA_FORMS}}}item")
            for field in row:
                self._add_field(item, field)
        return x

    def _add_field(self, parent: etree._Element, field: Field) -> None:
        element = etree.SubElement(parent, _FIELD)
        if field.var is not None:
            element.set("var", field.var)
        if field.type is not None and self.type != "submit":
            element.set("type", field.type)
        if field.label is not None:
            element.set("label", field.label)
        if field.desc is not None:
            etree.SubElement(element, f"{{{ns.DATA_FORMS}}}desc").text = field.desc
        if field.required:
            etree.SubElement(element, f"{{{ns.DATA_FORMS}}}required")
        for value in field.values:
            etree.SubElement(element, _VALUE).text = value
        for label, value in field.options:
            option = etree.SubElement(element, _OPTION)
            if label is not None:
                option.set("label", label)
            etree.SubElement(option, _VALUE).text = value


def parse_form(x: etree._Element) -> Form:
    """Read a ``jabber:x:data`` element; a malformed one is a ``bad-request``."""
    if x.tag != _X:
        raise StanzaError("bad-request", text="not a data form")
    form = Form(type=x.get("type") or "form")
    for element in x.iterchildren(_FIELD):
        values = [v.text or "" for v in element.iterchildren(_VALUE)]
        var = element.get("var")
        if var == FORM_TYPE:
            form.form_type = values[0] if values else None
            continue
        form.fields.append(Field(var, element.get("type"), element.get("label"), values))
    return form


def as_bool(field: Field | None, default: bool) -> bool:
    """A boolean field's value; an unreadable one is a ``not-acceptable`` error."""
    if field is None or not field.values:
        return default
    value = field.values[0].strip().lower()
    if value in _BOOLEAN_TRUE:
        return True
    if value in _BOOLEAN_FALSE:
        return False
    raise StanzaError("not-acceptable", text=f"{field.var} must be a boolean")
