"""Multi-user chat (XEP-0045): rooms at ``room@DOMAIN``, their occupants at ``room@DOMAIN/nick``."""

from services.muc.room import Room
from services.muc.service import MucService

__all__ = ["SERVICE", "MucService", "Room"]

SERVICE = MucService
