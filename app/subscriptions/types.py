"""Types only subscriptions return."""

from __future__ import annotations

import strawberry


@strawberry.type
class CaughtUp:
    caught_up: bool = strawberry.field(description="False only when timeoutMs passed first.")
    projections: list[str] = strawberry.field(
        description="The projections the token's events concern."
    )
    waited_ms: int
