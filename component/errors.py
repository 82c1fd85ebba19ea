"""Stanza errors (RFC 6120 §8.3) and stream errors (RFC 6120 §4.9)."""

from __future__ import annotations

from lxml import etree

from component import namespaces as ns

__all__ = ["StanzaError", "StreamError", "whole_number", "DEFAULT_ERROR_TYPES", "STREAM_CONDITIONS"]

#: Every defined condition of RFC 6120 §8.3.3 with the error type it usually takes.
DEFAULT_ERROR_TYPES: dict[str, str] = {
    "bad-request": "modify",
    "conflict": "cancel",
    "feature-not-implemented": "cancel",
    "forbidden": "auth",
    "gone": "cancel",
    "internal-server-error": "cancel",
    "item-not-found": "cancel",
    "jid-malformed": "modify",
    "not-acceptable": "modify",
    "not-allowed": "cancel",
    "not-authorized": "auth",
    "policy-violation": "modify",
    "recipient-unavailable": "wait",
    "redirect": "modify",
    "registration-required": "auth",
    "remote-server-not-found": "cancel",
    "remote-server-timeout": "wait",
    "resource-constraint": "wait",
    "service-unavailable": "cancel",
    "subscription-required": "auth",
    "undefined-condition": "cancel",
    "unexpected-request": "wait",
}

ERROR_TYPES = frozenset({"auth", "cancel", "continue", "modify", "wait"})

#: The stream error conditions of RFC 6120 §4.9.3.
STREAM_CONDITIONS = frozenset(
    {
        "bad-format", "bad-namespace-prefix", "conflict", "connection-timeout",
        "host-gone", "host-unknown", "improper-addressing", "internal-server-error",
        "invalid-from", "invalid-namespace", "invalid-xml", "not-authorized",
        "not-well-formed", "policy-violation", "remote-connection-failed", "reset",
        "resource-constraint", "restricted-xml", "see-other-host", "system-shutdown",
        "undefined-condition", "unsupported-encoding", "unsupported-feature",
        "unsupported-stanza-type", "unsupported-version",
    }
)


class StanzaError(Exception):
    """An error to answer a stanza with, or one received in reply to ours.

    Raise it from an entity's handler and the framework sends the error reply.
    """

    def __init__(
        self,
        condition: str,
        type: str | None = None,
        text: str | None = None,
        *,
        app_condition: etree._Element | None = None,
        by: str | None = None,
        detail: str | None = None,
    ) -> None:
        if condition not in DEFAULT_ERROR_TYPES:
            raise ValueError(f"unknown stanza error condition {condition!r}")
        error_type = type or DEFAULT_ERROR_TYPES[condition]
        if error_type not in ERROR_TYPES:
            raise ValueError(f"unknown stanza error type {error_type!r}")
        super().__init__(condition if text is None else f"{condition}: {text}")
        self.condition = condition
        self.type = error_type
        self.text = text
        self.app_condition = app_condition
        self.by = by
        #: The condition element's own text (``<gone>`` and ``<redirect>`` carry an address, RFC 6120 §8.3.3).
        self.detail = detail

    def to_element(self, namespace: str = ns.COMPONENT) -> etree._Element:
        """The ``<error/>`` child of an error stanza."""
        error = etree.Element(f"{{{namespace}}}error", type=self.type)
        if self.by:
            error.set("by", self.by)
        condition = etree.SubElement(error, f"{{{ns.STANZAS}}}{self.condition}", nsmap={None: ns.STANZAS})
        if self.detail:
            condition.text = self.detail
        if self.text:
            text = etree.SubElement(error, f"{{{ns.STANZAS}}}text", nsmap={None: ns.STANZAS})
            text.text = self.text
        if self.app_condition is not None:
            error.append(self.app_condition)
        return error

    @classmethod
    def from_stanza(cls, stanza: etree._Element) -> StanzaError:
        """Read the error carried by a stanza of type ``error``."""
        error = stanza.find(f"{{{stanza.nsmap.get(None, ns.COMPONENT)}}}error")
        if error is None:
            error = next((c for c in stanza if etree.QName(c).localname == "error"), None)
        if error is None:
            return cls("undefined-condition", text="error stanza without an error element")
        condition, text, app = "undefined-condition", None, None
        for child in error:
            if not isinstance(child.tag, str):
                continue
            qname = etree.QName(child)
            if qname.namespace == ns.STANZAS:
                if qname.localname == "text":
                    text = child.text
                elif qname.localname in DEFAULT_ERROR_TYPES:
                    condition = qname.localname
            else:
                app = child
        error_type = error.get("type")
        if error_type not in ERROR_TYPES:
            error_type = None
        return cls(condition, error_type, text, app_condition=app, by=error.get("by"))


def whole_number(text: str, what: str, condition: str) -> int:
    """``text`` read as a whole number, at least 0; else a ``condition`` error naming ``what``."""
    try:
        number = int(text)
    except ValueError:
        raise StanzaError(condition, text=f"{what} must be a number") from None
    if number < 0:
        raise StanzaError(condition, text=f"{what} must not be negative")
    return number


class StreamError(Exception):
    """A stream-level error: the stream is closed after it is sent."""

    def __init__(self, condition: str, text: str | None = None) -> None:
        if condition not in STREAM_CONDITIONS:
            raise ValueError(f"unknown stream error condition {condition!r}")
        super().__init__(condition if text is None else f"{condition}: {text}")
        self.condition = condition
        self.text = text

    def to_bytes(self) -> bytes:
        """The serialised ``<stream:error/>`` element."""
        text = ""
        if self.text:
            escaped = self.text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            text = f"<text xmlns='{ns.STREAM_ERRORS}'>{escaped}</text>"
        return (
            f"<stream:error><{self.condition} xmlns='{ns.STREAM_ERRORS}'/>{text}</stream:error>"
        ).encode()

    @classmethod
    def from_element(cls, element: etree._Element) -> StreamError:
        """Read a ``<stream:error/>`` received from the server."""
        condition, text = "undefined-condition", None
        for child in element:
            if not isinstance(child.tag, str):
                continue
            qname = etree.QName(child)
            if qname.localname == "text":
                text = child.text
            elif qname.localname in STREAM_CONDITIONS:
                condition = qname.localname
        return cls(condition, text)
