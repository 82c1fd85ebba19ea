"""Service discovery (XEP-0030): what an entity declares, and the replies built from it."""

from __future__ import annotations

from collections.abc import Iterable

import attrs
from lxml import etree

from component import namespaces as ns

__all__ = ["Identity", "Item", "info_element", "items_element"]


@attrs.frozen
class Identity:
    """A disco identity: category, type and an optional name."""

    category: str
    type: str
    name: str | None = None
    lang: str | None = None


@attrs.frozen
class Item:
    """A disco item: an address, with an optional node and name."""

    jid: str
    name: str | None = None
    node: str | None = None


def info_element(
    identities: Iterable[Identity],
    features: Iterable[str],
    forms: Iterable[etree._Element] = (),
    node: str | None = None,
) -> etree._Element:
    """The ``<query xmlns='…disco#info'/>`` of a result."""
    query = etree.Element(f"{{{ns.DISCO_INFO}}}query", nsmap={None: ns.DISCO_INFO})
    if node is not None:
        query.set("node", node)
    for identity in identities:
        element = etree.SubElement(
            query, f"{{{ns.DISCO_INFO}}}identity", category=identity.category, type=identity.type
        )
        if identity.name is not None:
            element.set("name", identity.name)
        if identity.lang is not None:
            element.set("{http://www.w3.org/XML/1998/namespace}lang", identity.lang)
    for feature in sorted(set(features)):
        etree.SubElement(query, f"{{{ns.DISCO_INFO}}}feature", var=feature)
    for form in forms:
        query.append(form)
    return query


def items_element(items: Iterable[Item], node: str | None = None) -> etree._Element:
    """The ``<query xmlns='…disco#items'/>`` of a result."""
    query = etree.Element(f"{{{ns.DISCO_ITEMS}}}query", nsmap={None: ns.DISCO_ITEMS})
    if node is not None:
        query.set("node", node)
    for item in items:
        element = etree.SubElement(query, f"{{{ns.DISCO_ITEMS}}}item", jid=item.jid)
        if item.name is not None:
            element.set("name", item.name)
        if item.node is not None:
            element.set("node", item.node)
    return query
