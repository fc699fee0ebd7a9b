"""The Mutation type: each resolver turns its input into a command and dispatches it."""

from __future__ import annotations

from typing import TypeVar

import strawberry
from strawberry.types import Info

from app.graphql.context import Context
from app.mutations import inputs
from app.mutations.payloads import CustomerPayload, OrderPayload, ProductPayload, accepted, rejected
from app.security.principal import Principal
from app.write.bus import CommandBus
from app.write.commands import Command
from app.write.domain.errors import Rejected

P = TypeVar("P", CustomerPayload, ProductPayload, OrderPayload)


async def payload_of(
    bus: CommandBus, principal: Principal | None, command: Command, payload: type[P]
) -> P:
    """Send a command on the bus and map its outcome to the payload type (here and on the
    compiled mutation path, app/mutations/compiled.py)."""
    try:
        outcome = await bus.dispatch(command, principal=principal)
    except Rejected as refusal:
        return rejected(payload, refusal.errors)
    return accepted(payload, outcome)


async def dispatch(info: Info[Context, None], command: Command, payload: type[P]) -> P:
    context = info.context
    return await payload_of(context.services.bus, context.principal, command, payload)


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def register_customer(
        self, info: Info[Context, None], input: inputs.RegisterCustomerInput
    ) -> CustomerPayload:
        return await dispatch(info, input.command(), CustomerPayload)

    @strawberry.mutation
    async def create_product(
        self, info: Info[Context, None], input: inputs.CreateProductInput
    ) -> ProductPayload:
        return await dispatch(info, input.command(), ProductPayload)

    @strawberry.mutation
    async def change_product_price(
        self, info: Info[Context, None], input: inputs.ChangeProductPriceInput
    ) -> ProductPayload:
        return await dispatch(info, input.command(), ProductPayload)

    @strawberry.mutation
    async def restock_product(
        self, info: Info[Context, None], input: inputs.RestockProductInput
    ) -> ProductPayload:
        return await dispatch(info, input.command(), ProductPayload)

    @strawberry.mutation(description="Reserves stock for every line atomically: all lines or none.")
    async def place_order(
        self, info: Info[Context, None], input: inputs.PlaceOrderInput
    ) -> OrderPayload:
        return await dispatch(info, input.command(), OrderPayload)

    @strawberry.mutation(description="PLACED -> PAID")
    async def pay_order(
        self, info: Info[Context, None], input: inputs.PayOrderInput
    ) -> OrderPayload:
        return await dispatch(info, input.command(), OrderPayload)

    @strawberry.mutation(description="PAID -> SHIPPED")
    async def ship_order(
        self, info: Info[Context, None], input: inputs.ShipOrderInput
    ) -> OrderPayload:
        return await dispatch(info, input.command(), OrderPayload)

    @strawberry.mutation(description="PLACED|PAID -> CANCELLED, stock released")
    async def cancel_order(
        self, info: Info[Context, None], input: inputs.CancelOrderInput
    ) -> OrderPayload:
        return await dispatch(info, input.command(), OrderPayload)
