"""Who is asking: an admin, a customer (by id), or nobody. Both sides of the app decide on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from uuid import UUID


class UserRole(StrEnum):
    """The `role` claim of a token."""

    ADMIN = "admin"
    CUSTOMER = "customer"


@dataclass(frozen=True)
class Principal:
    """The caller a valid token (or the open mode) names. No principal means anonymous."""

    role: UserRole
    subject: str
    customer_id: UUID | None = None  # set for customers: their id is the token's subject
    # When the token naming this caller expires (Unix time); None: never (open mode).
    expires_at: float | None = field(default=None, compare=False)

    @property
    def is_admin(self) -> bool:
        return self.role is UserRole.ADMIN

    def is_customer(self, customer_id: UUID | str | None) -> bool:
        """True if this caller is that customer."""
        return self.customer_id is not None and str(self.customer_id) == str(customer_id)

    def may_see_customer(self, customer_id: UUID | str | None) -> bool:
        """Admins see every customer's data; a customer sees only their own."""
        return self.is_admin or self.is_customer(customer_id)


LOCAL_ADMIN = Principal(UserRole.ADMIN, "local")
"""Everyone, when the service runs open (no secret and no JWKS URL configured)."""


def caller_identity(principal: Principal | None) -> str:
    """Who is asking, as one string (role and subject, a customer's id in its canonical form;
    empty for anonymous callers): what a consistency token is bound to."""
    if principal is None:
        return ""
    return f"{principal.role.value}:{principal.customer_id or principal.subject}"
