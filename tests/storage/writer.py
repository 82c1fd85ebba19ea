"""A process that writes roster rows and says so, for the crash-safety tests.

Run as ``python -m tests.storage.writer URL OWNER``: it opens the storage
(a PostgreSQL password comes from ``NETHERFIELD_STORAGE_PASSWORD``), then
writes rows ``contact-0``, ``contact-1``, ... on
OWNER's roster, one after the other, and prints ``acknowledged N`` as soon as
the Deferred of row N fired. It never stops by itself: the test kills it.
"""

from __future__ import annotations

import os
import sys
from itertools import count

from twisted.internet import defer, task

from component.storage import open_storage
from component.storage.rosters import ROSTER_MIGRATIONS, RosterRow, RosterStore

PASSWORD_ENV = "NETHERFIELD_STORAGE_PASSWORD"


async def write_forever(reactor: object, url: str, owner: str) -> None:
    password = os.environ.get(PASSWORD_ENV)
    storage = await open_storage(url, migrations=[ROSTER_MIGRATIONS], password=password, reactor=reactor)
    store = RosterStore(storage)
    print("ready", flush=True)
    for n in count():
        contact = f"contact-{n}"
        await store.write(owner, contact, RosterRow(contact, "both", name=f"Contact {n}"), None)
        print(f"acknowledged {n}", flush=True)


def main() -> None:
    url, owner = sys.argv[1:3]
    task.react(lambda reactor: defer.ensureDeferred(write_forever(reactor, url, owner)))


if __name__ == "__main__":
    main()
