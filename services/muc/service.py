"""The multi-user chat service at the component domain (XEP-0045 §6).

It answers disco for the service, lists public rooms, decides who may
create rooms, names the service admins (owners of every room), and hands
the router a :class:`Room` for any ``room@domain``, loading stored rooms
lazily and letting idle ones go.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

from twisted.internet import defer
from twisted.logger import Logger

from component.config import ClusterConfig
from component.disco import Identity, Item
from component.entity import Entity, IQResult
from component.errors import StanzaError
from component.jid import JID, parse_stored_jid
from component.leases import Lease, LeaseManager
from component.ordering import InFlight
from component.service import Service
from component.stanza import Stanza
from component.stats import Sample
from component.storage import Storage, StorageError
from services.muc.affiliations import AFFILIATION_RANK
from services.muc.archive import HistoryWriter
from services.muc.archive_store import ArchiveStore
from services.muc.commands import muc_commands
from services.muc.feature import Registry
from services.muc.features import FEATURES
from services.muc.history import HistoryEntry
from services.muc.host import RoomHost
from services.muc.limits import MucLimits
from services.muc.live import LIVE_MIGRATIONS, LiveState
from services.muc.occupant_id import OCCUPANT_ID, SECRET_MIGRATIONS, OccupantIds, load_secret
from services.muc.protocol import MUC
from services.muc.retention import Retention
from services.muc.room import Room
from services.muc.settings import MucSettings
from services.muc.store import MUC_MIGRATIONS, MucStore
from services.muc.tenure import room_key
from services.muc.tombstones import Tombstones
from services.muc.unique import UNIQUE, unique_name
from services.muc.writes import WriteFailures

__all__ = ["MucService"]

log = Logger()



class MucService(Service):
    """Hosts the rooms of one component domain."""

    name = "muc"
    settings_class: ClassVar[type[Any]] = MucSettings
    settings: MucSettings
    migrations = (MUC_MIGRATIONS, SECRET_MIGRATIONS, LIVE_MIGRATIONS)
    clustered = True
    #: The features of every room (a subclass may add its own).
    room_features: ClassVar[Registry] = FEATURES
    component: RoomHost

    def __init__(self, component: RoomHost, options: dict[str, Any]) -> None:
        super().__init__(component, options)
        self.admins = self.settings.admins
        self.limits = MucLimits(self.settings, component.clock.seconds, self.is_admin)
        self.store: MucStore | None = None
        #: The rooms' archives, to query (with a store).
        self.archive: ArchiveStore | None = None
        self.retention: Retention | None = None
        #: Every room's history rows, written together (with a store).
        self.history_writer: HistoryWriter | None = None
        #: Public rooms for disco#items: node → name; stored ones even while unloaded.
        self.public_rooms: dict[str, str] = {}
        self._in_flight = InFlight()
        #: Writes the database refused, by kind; each refusal was the requester's error.
        self.write_failures = WriteFailures(component.clock.seconds)
        #: Groupchat messages kept in rooms' histories (and archived, for persistent rooms).
        self.messages_archived = 0
        #: Occupant ids (XEP-0421); from the stored secret once started with storage.
        self.occupant_ids = OccupantIds.unstored()
        #: Names of destroyed persistent rooms nobody may take yet.
        self.tombstones = Tombstones(component.clock.seconds, self.is_admin, self.track)
        #: The rooms' leases, when this is one of several instances (``[cluster]``).
        self.leases: LeaseManager | None = None

    # -- settings --------------------------------------------------------------
    # Rooms, features and the service read self.settings, the settings in force.

    @property
    def local_domains(self) -> frozenset[str]:
        """The domains whose users ``creation = "local"`` lets create rooms (the server's, unless set)."""
        domains = self.settings.local_domains
        return frozenset({self.component.server_domain}) if domains is None else domains

    # -- lifecycle -------------------------------------------------------------

    def reconfigure(self, replacement: Service) -> bool:
        """Every MUC setting but ``live_state`` applies without reconnecting: rooms stay, occupants stay."""
        if not isinstance(replacement, MucService):
            return False
        if replacement.settings.live_state != self.settings.live_state:
            return False  # rooms loaded with and without stored occupants would mix: start over
        ids_changed = replacement.settings.occupant_id != self.settings.occupant_id
        self.settings = replacement.settings
        self.admins = self.settings.admins
        if ids_changed:
            for room in self._loaded_rooms():
                for occupant in room.occupants:
                    occupant.changed()  # the presences kept serialised gain or lose their occupant-id
        if self.history_writer is not None:
            self.history_writer.rows = self.settings.history_batch
        if self.retention is not None:
            self.retention.reconfigure(self.settings)
        limits = MucLimits(self.settings, self.component.clock.seconds, self.is_admin)
        limits.carry_over(self.limits)
        self.limits = limits
        # The domain's disco#info (occupant ids, say) was kept serialised from the old settings.
        for entity in self.component.router.entities():
            entity.forget_disco_info()
        return True

    async def _start(self, storage: Storage | None) -> None:
        if storage is not None:
            self.store = MucStore(storage, clock=self.component.clock.seconds, leases=self.leases)
            store = self.store
            self.occupant_ids = OccupantIds(await load_secret(storage))
            await self.tombstones.load(store)
            self.archive = ArchiveStore(storage, leases=self.leases)
            self.retention = Retention(self.archive, self.settings, self.component.clock)
            self.retention.start()
            self.history_writer = HistoryWriter(
                lambda batches, leases: self.track(store.append_rooms_histories(batches, leases)),
                rows=self.settings.history_batch,
            )
            for record in await self.store.list_rooms(public_only=True):
                self.public_rooms[record.node] = str(record.config.get("name") or "")
            owners = [(node, _stored_jid(node, owner)) for node, owner in await self.store.room_owners()]
            self.limits.count_rooms((node, owner) for node, owner in owners if owner is not None)
        self.component.router.set_node_factory(self._room_for)
        for command in muc_commands(self):
            self.component.commands.add(command)

    def start(self, storage: Storage | None = None, cluster: ClusterConfig | None = None) -> defer.Deferred[None]:
        """Open the rooms' store on ``storage`` (rooms live in memory only without one) and serve rooms.

        With ``cluster`` this is one of several instances on one PostgreSQL:
        it serves a room only under the room's lease, taken when a stanza for
        the room arrives, and keeps every room's live state in the database.
        """
        return defer.ensureDeferred(self._start_clustered(storage, cluster))

    async def _start_clustered(self, storage: Storage | None, cluster: ClusterConfig | None) -> None:
        if cluster is not None and cluster.instance is not None:
            if storage is None or not callable(getattr(storage, "listen", None)):
                raise StorageError("[cluster] needs the rooms in PostgreSQL (storage.url = \"postgresql://...\")")
            leases = LeaseManager(storage, cluster.instance, cluster.lease_seconds, self, self.component.clock)  # type: ignore[arg-type]
            await leases.start()
            self.leases = leases
        try:
            await self._start(storage)
        except BaseException:
            await self._stop_leases()
            raise

    @property
    def live(self) -> bool:
        """Whether rooms store their live state (occupants, subject, lock) before announcing it."""
        return self.store is not None and (self.leases is not None or self.settings.live_state)

    def stop(self) -> defer.Deferred[Any]:
        if self.retention is not None:
            self.retention.stop()
        for command in muc_commands(self):
            self.component.commands.remove(command.node)
        return defer.ensureDeferred(self._stop())

    async def _stop(self) -> None:
        await self.drained()
        if self.leases is not None:
            # The occupants stay in the database for whoever serves their rooms next.
            await self._stop_leases()
        elif self.live and self.store is not None:
            # A single instance told every occupant it stops (332): nobody is in its rooms any more.
            await self.store.forget_all_live()

    async def _stop_leases(self) -> None:
        leases, self.leases = self.leases, None
        if leases is not None:
            await leases.stop()

    def lease_lost(self, lease: Lease) -> None:
        """Another instance took a room (or this one could not renew its lease): let the room go, silently."""
        node = _node_of_key(lease.key, self.component.jid.domain)
        room = self.component.router.loaded(node) if node is not None else None
        if isinstance(room, Room):
            room.lease_lost(lease)

    def track(self, deferred: defer.Deferred[Any]) -> defer.Deferred[Any]:
        """Remember a storage write until it completes; :meth:`drained` waits for them."""
        return self._in_flight.track(deferred)

    def drained(self) -> defer.Deferred[Any]:
        """Fires once every write in flight has completed."""
        return self._in_flight.drain()

    # -- rooms ---------------------------------------------------------------

    def _room_for(self, node: str) -> Entity | defer.Deferred[Entity | None] | None:
        jid = JID(node, self.component.jid.domain)
        if self.store is None:
            return Room(self, jid)
        if node in self.limits.absent and self.leases is None:
            # A room nobody created yet (another instance may have since, with [cluster]).
            return self._new_room(jid, None, None)
        return self.track(defer.ensureDeferred(self._load(jid)))

    def _new_room(self, jid: JID, lease: Lease | None, state: LiveState | None) -> Room:
        room = Room(self, jid)
        if self.live:
            assert self.store is not None
            room.keep_live(self.store, self.leases, lease, state)
        return room

    async def _load(self, jid: JID) -> Entity | None:
        assert self.store is not None
        node = jid.node or ""
        lease = None
        if self.leases is not None:
            # ejabberd sends this room's stanzas here now: whoever served it
            # before is gone from its slot, so the room is taken, not waited
            # for. The lease's fence keeps any late write of theirs out, and
            # what they stored before it is read below.
            lease = await self.leases.acquire(room_key(str(jid)), take=True)
        state = await self.store.live_state(node) if self.live else None
        room = self._new_room(jid, lease, state)
        record = await self.store.load_room(node)
        if record is None:
            if state is None or state.room is None or state.room.config is None:
                self.limits.absent.add(node)
            else:
                room.carry_on(state)
                self.room_changed(room)
            return room
        room.restore(record)
        for bare, entry in (await self.store.affiliations(node)).items():
            affiliated = _stored_jid(node, bare)
            if affiliated is not None and entry.affiliation in AFFILIATION_RANK:
                room.affiliations.set(affiliated, entry.affiliation, entry.reason, entry.nick)
        for stored in await self.store.recent_history(node, room.config.history_length):
            try:
                room.history.add(HistoryEntry.parse(stored.stanza, stored.timestamp, str(jid), stored.stanza_id))
            except Exception:
                log.warn("{room}: skipped an unreadable archived message", room=str(jid))
        if state is not None:
            room.carry_on(state)
        return room

    def room_changed(self, room: Room) -> None:
        """A room was created or configured: keep the directory of public rooms right."""
        node = room.jid.node or ""
        if room.exists and room.config.public and not room.locked:
            self.public_rooms[node] = room.config.name
        else:
            self.public_rooms.pop(node, None)

    def room_created(self, room: Room, creator: JID) -> None:
        """``creator`` created a room."""
        self.limits.room_created(room.jid.node or "", creator)
        log.info("{room}: created by {creator}", room=str(room.jid), creator=str(creator.bare))
        self.room_changed(room)

    def room_configured(self, room: Room) -> None:
        """The owner submitted the room's configuration."""
        config = room.config
        traits = [
            "persistent" if config.persistent else "temporary",
            "public" if config.public else "hidden",
            "members-only" if config.members_only else "open",
            *(["moderated"] if config.moderated else []),
            *(["password-protected"] if config.needs_password else []),
        ]
        log.info("{room}: configured ({traits})", room=str(room.jid), traits=", ".join(traits))
        self.room_changed(room)

    def room_gone(self, room: Room) -> None:
        """A room was destroyed or vanished."""
        self.public_rooms.pop(room.jid.node or "", None)
        self.limits.room_gone(room.jid.node or "")

    def _loaded_rooms(self) -> list[Room]:
        return [entity for entity in self.component.router.entities() if isinstance(entity, Room)]

    # -- metrics ---------------------------------------------------------------

    def samples(self) -> Iterator[Sample]:
        rooms = self._loaded_rooms()
        yield Sample("muc_rooms_loaded", "gauge", "Rooms in memory.", len(rooms))
        yield Sample("muc_occupants", "gauge", "Occupants of the rooms in memory.", sum(len(r.occupants) for r in rooms))
        yield Sample("muc_messages_archived", "counter", "Groupchat messages kept in a room's history.",
                     self.messages_archived)
        store = self.store
        yield Sample("muc_history_writes", "counter", "Messages written to the database's room history.",
                     store.history_writes if store is not None else 0)
        failures = self.write_failures.counts
        for kind in sorted({"history", *failures}):
            yield Sample("muc_write_failures", "counter", "Database writes that failed, by kind (history, config...).",
                         failures[kind], (("kind", kind),))

    # -- rules ----------------------------------------------------------------

    def is_admin(self, jid: JID) -> bool:
        """Service admins have owner rights in every room: the MUC's own and the domain's."""
        return self.component.is_admin(jid)

    def check_creation(self, jid: JID) -> None:
        """Raise ``not-allowed`` unless ``jid`` may create rooms (and one more of them)."""
        creation = self.settings.creation
        local = creation == "local" and jid.domain in self.local_domains
        if not (self.is_admin(jid) or creation == "anyone" or local):
            raise StanzaError("not-allowed", text="room creation is restricted")
        self.limits.check_creation(jid)

    # -- disco ----------------------------------------------------------------

    def domain_identities(self) -> tuple[Identity, ...]:
        return (Identity("conference", "text", "Chatrooms"),)

    def domain_features(self) -> frozenset[str]:
        # Every room gives occupant ids: XEP-0421 §4 has the service say so too.
        return frozenset({MUC, OCCUPANT_ID}) if self.settings.occupant_id else frozenset({MUC})

    def domain_iq_handlers(self) -> Mapping[tuple[str, str], Callable[[Stanza], IQResult]]:
        return {("get", UNIQUE): unique_name}

    def domain_items(self, stanza: Stanza) -> list[Item]:
        domain = self.component.jid.domain
        return [Item(f"{node}@{domain}", name or node) for node, name in sorted(self.public_rooms.items())]


def _node_of_key(key: str, domain: str) -> str | None:
    """The room node a lease key names, if it is one of this domain's rooms."""
    prefix = room_key("")
    if not key.startswith(prefix):
        return None
    node, _, rest = key[len(prefix):].partition("@")
    return node if rest == domain and node else None


def _stored_jid(node: str, text: str) -> JID | None:
    """An affiliated address read back from muc_affiliations; None (logged) for a row that is not one."""
    return parse_stored_jid(text, table="muc_affiliations", row={"room": node, "jid": text})
