"""The features of every room, registered here and nowhere else.

Their order is the order their hooks fire in, and it matters: a newcomer's
checks run in this order (so the first refusal is the one the client gets),
and a submitted configuration form is read field by field in this order,
the order of XEP-0045 §10.2's fields.
"""

from __future__ import annotations

from services.muc.feature import Registry
from services.muc.features.admin import AdminLists
from services.muc.features.admins_and_owners import AdminsAndOwners
from services.muc.features.anonymity import Anonymity
from services.muc.features.archive import Archiving
from services.muc.features.avatar import Avatar
from services.muc.features.bans import Bans
from services.muc.features.hidden import Hidden
from services.muc.features.history import DiscussionHistory
from services.muc.features.invitations import Invitations
from services.muc.features.logging import Logging
from services.muc.features.member_list import MemberList
from services.muc.features.members_only import MembersOnly
from services.muc.features.moderated import Moderated
from services.muc.features.moderation import Moderation
from services.muc.features.naming import Naming
from services.muc.features.occupant_ids import OccupantIdentifiers
from services.muc.features.occupant_iqs import OccupantIQs
from services.muc.features.occupant_limit import OccupantLimit
from services.muc.features.owner import Owner
from services.muc.features.password import Password
from services.muc.features.persistent import Persistent
from services.muc.features.presence_broadcast import PresenceBroadcast
from services.muc.features.private_messages import PrivateMessages
from services.muc.features.registration import Registration
from services.muc.features.subject import Subject

__all__ = ["FEATURES"]

#: Every room's features, in the order their hooks fire.
FEATURES = Registry([
    Bans(),
    Naming(),
    Persistent(),
    Hidden(),
    MembersOnly(),
    Moderated(),
    Password(),
    Anonymity(),
    Subject(),
    PrivateMessages(),
    OccupantIQs(),
    Invitations(),
    Registration(),
    OccupantLimit(),
    DiscussionHistory(),
    PresenceBroadcast(),
    MemberList(),
    Logging(),
    Archiving(),
    AdminLists(),
    AdminsAndOwners(),
    Owner(),
    OccupantIdentifiers(),
    Avatar(),
    Moderation(),
])
