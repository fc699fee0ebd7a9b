"""Who may send which command (docs/security.md): the write side's half of the rules.

Anonymous callers may send nothing. Catalogue changes, registering customers and shipping
are for admins. A customer places orders for themselves and pays or cancels only their own;
someone else's order is reported exactly as a missing one, so its existence does not leak.
"""

from __future__ import annotations

from app.security.principal import Principal
from app.write import commands
from app.write.commands import Command
from app.write.domain.errors import ErrorCode, reject
from app.write.ports import UnitOfWork

ADMIN_ONLY: tuple[type[Command], ...] = (
    commands.RegisterCustomer,
    commands.CreateProduct,
    commands.ChangeProductPrice,
    commands.RestockProduct,
    commands.ShipOrder,
)


async def command_rules(principal: Principal | None, command: Command, uow: UnitOfWork) -> None:
    """Raise Rejected (UNAUTHENTICATED, FORBIDDEN or NOT_FOUND) unless the caller may."""
    if principal is None:
        raise reject(
            ErrorCode.UNAUTHENTICATED,
            "this needs credentials: send `Authorization: Bearer <token>`",
        )
    if principal.is_admin:
        return
    name = type(command).__name__
    if isinstance(command, ADMIN_ONLY):
        raise reject(ErrorCode.FORBIDDEN, f"{name} needs the admin role")
    if isinstance(command, commands.PlaceOrder):
        if not principal.is_customer(command.customer_id):
            raise reject(
                ErrorCode.FORBIDDEN, "a customer places orders only for themselves", "customerId"
            )
    elif isinstance(command, commands.PayOrder | commands.CancelOrder):
        order_id = command.order_id
        owner = await uow.orders.owner(order_id) if order_id is not None else None
        if not principal.is_customer(owner):
            raise reject(ErrorCode.NOT_FOUND, "no such order", "orderId")
