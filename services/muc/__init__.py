"""Multi-user chat (XEP-0045): rooms at ``room@DOMAIN``, their occupants at ``room@DOMAIN/nick``.

The layout: ``service`` hosts the rooms (creation rules, the directory, loading
stored rooms); ``room`` is the room core (occupants, roles and affiliations,
stanzas one at a time in arrival order through ``component.ordering.Turns``,
timers), writing through its ``persistence.RoomStorage``; every feature
is one module in ``features/`` (password, members-only, moderated and voice,
invitations, registration, admin lists, owner configuration, ...), registered
in ``features/__init__.py`` and written against ``feature.Feature``'s hooks,
seeing the room only as a ``context.RoomContext``.

- A join: ``Room.handle_presence`` → ``_enter`` parses a ``Join``; the features'
  ``check_entry``, ``check_nick`` and ``check_seat`` may refuse it; the core
  sends the occupant list (without those whose role a feature's
  ``broadcasts_presence`` hides; ``extend_occupant_list`` adds to it), seats
  the occupant, sends its presence (``entry_codes``; to the others only if its
  role is broadcast), then the features' ``greeting`` (the history, then the
  subject), then fires ``on_join``.
- A message: groupchat is reflected by the core (``decorate_message`` first) and
  kept in the history, unless a feature's ``groupchat_handlers`` claims it (a
  subject change, a retraction); one to an occupant goes to the feature with
  ``message_to_occupant`` (private messages); any other goes to the features'
  ``message_handlers`` by child (voice requests, invitations). A subject change
  or a private message passes the features' checks first.
- A config change: the owner feature's IQ handler calls ``Room.configure``; each
  feature reads its fields (``configure``, ``check_config``; the lists of admins
  and owners as affiliation rows, ``configure_affiliations``), the core stores
  the result in one transaction, applies it, fires ``on_affiliations_configured``
  and ``on_config_change`` and announces the status codes.
- IQs to the room go to the features' ``iq_handlers`` by (type, payload tag);
  IQs to an occupant to the feature with ``iq_to_occupant``, outside the
  room's order of stanzas.
"""

from services.muc.room import Room
from services.muc.service import MucService

__all__ = ["SERVICE", "MucService", "Room"]

SERVICE = MucService
