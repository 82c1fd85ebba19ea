"""A process that writes roster rows and says so, for the crash-safety tests.

Run as ``python -m tests.storage.writer URL OWNER``: it opens the storage
through `StorageConfig` (so a PostgreSQL password comes from the environment,
as in production), then saves rows ``contact-0``, ``contact-1``, ... on
OWNER's roster, one after the other, and prints ``acknowledged N`` as soon as
the Deferred of row N fired. It never stops by itself: the test kills it.
"""

from __future__ import annotations

import sys
from itertools import count

from twisted.internet import defer, task

from component.storage.config import StorageConfig
from component.storage.rosters import ROSTER_MIGRATIONS, RosterRow, RosterStore


async def write_forever(reactor: object, url: str, owner: str) -> None:
    storage = await StorageConfig(url=url).open([ROSTER_MIGRATIONS], reactor=reactor)
    store = RosterStore(storage)
    print("ready", flush=True)
    for n in count():
        await store.save(owner, RosterRow(f"contact-{n}", "both", name=f"Contact {n}"))
        print(f"acknowledged {n}", flush=True)


def main() -> None:
    url, owner = sys.argv[1:3]
    task.react(lambda reactor: defer.ensureDeferred(write_forever(reactor, url, owner)))


if __name__ == "__main__":
    main()
