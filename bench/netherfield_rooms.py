"""Fill a Netherfield database with persistent rooms, for the ``rooms`` scenario.

    python -m bench.netherfield_rooms --url sqlite:////tmp/bench.db --rooms 10000 --domain bench.localhost

Goes through the MUC service's own store, so that the rows are the ones the service
writes when an owner makes a room persistent: a configuration and an owner each.
"""

from __future__ import annotations

import argparse
from typing import Any

from twisted.internet import defer, task

from bench.wire import DEFAULT_DOMAIN

#: Writes in flight at once; the SQLite storage runs them one after the other anyway.
BATCH = 500


async def fill(reactor: Any, url: str, rooms: int, domain: str) -> None:
    """Store ``rooms`` persistent rooms ``room0`` … with an owner each."""
    from component.storage import open_storage
    from services.muc.config import RoomConfig
    from services.muc.store import MUC_MIGRATIONS, MucStore

    storage = await open_storage(url, migrations=[MUC_MIGRATIONS], reactor=reactor)
    store = MucStore(storage)

    async def store_room(i: int) -> None:
        node = f"room{i}"
        await store.save_config(node, RoomConfig(name=f"Room {i}", persistent=True).to_dict())
        await store.set_affiliation(node, f"owner{i}@{domain}", "owner")

    try:
        for start in range(0, rooms, BATCH):
            await defer.gatherResults(
                [defer.ensureDeferred(store_room(i)) for i in range(start, min(rooms, start + BATCH))],
                consumeErrors=True,
            )
    finally:
        await storage.close()


def main(argv: list[str] | None = None) -> None:
    """Fill the database named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="storage URL, as in Netherfield's [storage] url")
    parser.add_argument("--rooms", type=int, required=True)
    parser.add_argument("--domain", default=DEFAULT_DOMAIN)
    args = parser.parse_args(argv)
    task.react(lambda reactor: defer.ensureDeferred(fill(reactor, args.url, args.rooms, args.domain)))


if __name__ == "__main__":
    main()
