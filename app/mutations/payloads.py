"""What every mutation returns: userErrors, version, consistencyToken, the id, the read model."""

from __future__ import annotations

from typing import Any, TypeVar

import strawberry

from app.queries.types import Customer, Order, Product
from app.write.bus import Accepted
from app.write.domain.errors import ErrorCode
from app.write.domain.errors import UserError as DomainUserError

strawberry.enum(ErrorCode, name="ErrorCode")  # the domain's codes are the contract's


@strawberry.type
class UserError:
    code: ErrorCode
    message: str
    field: list[str] | None

    @classmethod
    def of(cls, error: DomainUserError) -> UserError:
        return cls(code=error.code, message=error.message, field=list(error.field or []) or None)


@strawberry.interface
class CommandPayload:
    user_errors: list[UserError]
    version: int | None
    consistency_token: str | None


@strawberry.type
class CustomerPayload(CommandPayload):
    customer_id: strawberry.ID | None = None
    customer: Customer | None = None


@strawberry.type
class ProductPayload(CommandPayload):
    product_id: strawberry.ID | None = None
    product: Product | None = None


@strawberry.type
class OrderPayload(CommandPayload):
    order_id: strawberry.ID | None = None
    order: Order | None = None


P = TypeVar("P", CustomerPayload, ProductPayload, OrderPayload)

_ID_FIELD = {CustomerPayload: "customer_id", ProductPayload: "product_id", OrderPayload: "order_id"}


def accepted(payload: type[P], outcome: Accepted) -> P:
    """The payload of a committed command."""
    id_field: dict[str, Any] = {_ID_FIELD[payload]: strawberry.ID(str(outcome.aggregate_id))}
    return payload(
        user_errors=[],
        version=outcome.version,
        consistency_token=outcome.consistency_token,
        **id_field,
    )


def rejected(payload: type[P], errors: tuple[DomainUserError, ...]) -> P:
    """The payload of a refused command: only its errors."""
    return payload(
        user_errors=[UserError.of(error) for error in errors], version=None, consistency_token=None
    )
