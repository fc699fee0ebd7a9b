"""What every mutation returns: userErrors, version, consistencyToken, the id, the read model."""

from __future__ import annotations

from typing import Any, TypeVar

import strawberry
from strawberry.types import Info

from app.graphql.context import Context
from app.queries.read_your_writes import (
    customer_after_write,
    order_after_write,
    product_after_write,
)
from app.queries.types import Customer, Order, Product
from app.write.domain.errors import ErrorCode
from app.write.domain.errors import UserError as DomainUserError
from app.write.executor import Accepted

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


_READ_MODEL = (
    "{} as projected, read after waiting (bounded) until its projection has applied this "
    "command's events; null if that wait timed out or the command was refused."
)


@strawberry.type
class CustomerPayload(CommandPayload):
    customer_id: strawberry.ID | None = None

    @strawberry.field(description=_READ_MODEL.format("The customer"))
    async def customer(self, info: Info[Context, None]) -> Customer | None:
        return await customer_after_write(info, self.customer_id, self.consistency_token)


@strawberry.type
class ProductPayload(CommandPayload):
    product_id: strawberry.ID | None = None

    @strawberry.field(description=_READ_MODEL.format("The product"))
    async def product(self, info: Info[Context, None]) -> Product | None:
        return await product_after_write(info, self.product_id, self.consistency_token)


@strawberry.type
class OrderPayload(CommandPayload):
    order_id: strawberry.ID | None = None

    @strawberry.field(description=_READ_MODEL.format("The order"))
    async def order(self, info: Info[Context, None]) -> Order | None:
        return await order_after_write(info, self.order_id, self.consistency_token)


P = TypeVar("P", CustomerPayload, ProductPayload, OrderPayload)

_ID_FIELD: dict[type, str] = {
    CustomerPayload: "customer_id",
    ProductPayload: "product_id",
    OrderPayload: "order_id",
}


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
