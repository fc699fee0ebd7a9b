"""Who may read what (docs/security.md): the read side's half of the rules.

The catalogue is public. Anything else needs credentials (UNAUTHENTICATED without them).
Customers read their own profile and orders; someone else's reads as not there (null), and
asking for another customer's orders by id is FORBIDDEN. Customer lists, the sales report
and the projections' status are for admins (FORBIDDEN for customers).
"""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from strawberry.types import Info

from app.graphql.context import Context
from app.graphql.errors import ClientError
from app.security.principal import Principal


class Unauthenticated(ClientError):
    """No credentials (or unusable ones) where they are needed."""

    extensions: ClassVar[dict[str, object]] = {"code": "UNAUTHENTICATED"}


class Forbidden(ClientError):
    """Valid credentials, but this caller may not do this."""

    extensions: ClassVar[dict[str, object]] = {"code": "FORBIDDEN"}


def caller(info: Info[Context, None]) -> Principal:
    """The authenticated caller; UNAUTHENTICATED if anonymous."""
    principal = info.context.principal
    if principal is None:
        raise Unauthenticated(
            "this needs credentials: send `Authorization: Bearer <token>` "
            "(over WebSocket: in the connection_init payload)"
        )
    return principal


def admin(info: Info[Context, None], what: str) -> Principal:
    """The caller, who must be an admin."""
    principal = caller(info)
    if not principal.is_admin:
        raise Forbidden(f"{what} needs the admin role")
    return principal


def orders_of(info: Info[Context, None], customer_id: UUID | None) -> UUID | None:
    """The customer whose orders a listing may show: any (None) or the one asked for, for
    admins; a customer sees only their own, and asking for anyone else's is FORBIDDEN."""
    principal = caller(info)
    if principal.is_admin:
        return customer_id
    if customer_id is not None and not principal.is_customer(customer_id):
        raise Forbidden("a customer may list only their own orders")
    return principal.customer_id


def may_see(info: Info[Context, None], customer_id: UUID | str | None) -> bool:
    """Whether the caller may see data of this customer (theirs, or anyone's for admins)."""
    return caller(info).may_see_customer(customer_id)
