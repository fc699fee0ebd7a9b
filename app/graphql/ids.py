"""Ids in the API are UUIDs; a string that is not one cannot name anything."""

from __future__ import annotations

from uuid import UUID


def parse_id(raw: str | None) -> UUID | None:
    """The UUID a client-given id stands for, or None when it cannot name anything."""
    if raw is None:
        return None
    try:
        return UUID(str(raw))
    except ValueError:
        return None
