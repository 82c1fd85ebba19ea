"""Result Set Management (XEP-0059): paging through a long list of results.

A request's ``<set/>`` is parsed once into a :class:`PageRequest`; a list
the entity already holds, in its own order, is cut into the page asked for
by :func:`page`, which also gives the ``<set/>`` that describes the page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import attrs
from lxml import etree

from component import namespaces as ns
from component.errors import StanzaError

__all__ = ["PageRequest", "Page", "parse_request", "page", "set_element"]

T = TypeVar("T")

_SET = f"{{{ns.RSM}}}set"


@attrs.frozen
class PageRequest:
    """What a ``<set/>`` asks for: at most ``max`` items after, before or from an item."""

    max: int | None = None
    after: str | None = None
    #: An empty ``<before/>`` (``""``) asks for the last page.
    before: str | None = None
    index: int | None = None


@attrs.frozen
class Page(Generic[T]):
    """One page of results and where it lies in the whole list."""

    items: tuple[T, ...]
    first_index: int
    count: int
    first: str | None
    last: str | None

    def set_element(self) -> etree._Element:
        """The ``<set/>`` of the result: first and last item, and how many there are in all."""
        return set_element(self.first, self.last, self.count, self.first_index)


def set_element(first: str | None, last: str | None, count: int | None, first_index: int | None = None) -> etree._Element:
    """A result's ``<set/>`` (XEP-0059 §2.6): its first and last item (none on an empty page),
    the first's index when known, and the count when known."""
    result = etree.Element(_SET, nsmap={None: ns.RSM})
    if first is not None and last is not None:
        element = etree.SubElement(result, f"{{{ns.RSM}}}first")
        if first_index is not None:
            element.set("index", str(first_index))
        element.text = first
        etree.SubElement(result, f"{{{ns.RSM}}}last").text = last
    if count is not None:
        etree.SubElement(result, f"{{{ns.RSM}}}count").text = str(count)
    return result


def parse_request(query: etree._Element) -> PageRequest | None:
    """The ``<set/>`` in ``query``, or None when it has none; a malformed one is ``bad-request``."""
    found = query.find(_SET)
    if found is None:
        return None
    values: dict[str, str | None] = {}
    for child in found:
        if isinstance(child.tag, str) and child.tag.startswith(f"{{{ns.RSM}}}"):
            values[etree.QName(child).localname] = child.text or ""
    return PageRequest(
        max=_whole_number(values.get("max"), "max"),
        after=values.get("after") or None,
        before=values.get("before"),
        index=_whole_number(values.get("index"), "index"),
    )


def page(items: Sequence[T], key: Callable[[T], str], request: PageRequest | None, limit: int) -> Page[T]:
    """The page of ``items`` that ``request`` asks for, never longer than ``limit``.

    Without a request the first page is given. An ``after`` or ``before``
    naming no item is ``item-not-found`` (XEP-0059 §2.5).
    """
    size = limit if request is None or request.max is None else min(request.max, limit)
    start = 0
    end = len(items)
    if request is not None:
        if request.after is not None:
            start = _position(items, key, request.after) + 1
        elif request.before is not None:
            end = _position(items, key, request.before) if request.before else len(items)
            start = max(0, end - size)
        elif request.index is not None:
            start = min(request.index, len(items))
    chosen = tuple(items[start : min(end, start + size)])
    return Page(
        items=chosen,
        first_index=start,
        count=len(items),
        first=key(chosen[0]) if chosen else None,
        last=key(chosen[-1]) if chosen else None,
    )


def _position(items: Sequence[T], key: Callable[[T], str], wanted: str) -> int:
    for position, item in enumerate(items):
        if key(item) == wanted:
            return position
    raise StanzaError("item-not-found", text="no item with that id in the result set")


def _whole_number(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise StanzaError("bad-request", text=f"<{name}/> must be a whole number")
    return value
