"""Product: a sku, a name, a price, and the stock available to order.

Reserving and releasing stock for orders is recorded by the order's events (OrderPlaced,
OrderCancelled), not as product events: a product's version counts changes to the product
itself, so an optimistic price change is not refused merely because someone ordered it.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from app.events import ProductCreated, ProductPriceChanged, ProductRestocked
from app.write.domain import rules
from app.write.domain.aggregate import Aggregate
from app.write.domain.errors import UserError, raise_if_any


class Product(Aggregate):
    def __init__(
        self,
        product_id: UUID,
        version: int,
        sku: str,
        name: str,
        price_cents: int,
        stock: int,
        created_at: datetime | None = None,
    ) -> None:
        super().__init__(product_id, version)
        self.created_at = created_at
        self.sku = sku
        self.name = name
        self.price_cents = price_cents
        self.stock = stock

    @classmethod
    def create(
        cls, product_id: UUID, sku: str, name: str, price_cents: int, stock: int, now: datetime
    ) -> Product:
        """A new product; the sku's uniqueness is the repository's to check."""
        errors: list[UserError] = []
        rules.sku(sku, errors)
        name = rules.name(name, errors)
        rules.in_range(price_cents, 0, rules.MAX_PRICE_CENTS, "priceCents", errors, ("priceCents",))
        rules.in_range(stock, 0, rules.MAX_INITIAL_STOCK, "stock", errors, ("stock",))
        raise_if_any(errors)
        product = cls(product_id, 0, sku, name, price_cents, stock, now)
        product.record(ProductCreated(product_id, sku, name, price_cents, stock, now))
        return product

    def change_price(self, price_cents: int, expected_version: int | None) -> None:
        errors: list[UserError] = []
        rules.in_range(price_cents, 0, rules.MAX_PRICE_CENTS, "priceCents", errors, ("priceCents",))
        raise_if_any(errors)
        self.require_version(expected_version)
        previous, self.price_cents = self.price_cents, price_cents
        self.record(ProductPriceChanged(self.id, price_cents, previous))

    def restock(self, quantity: int, reserved: int) -> None:
        """Add stock; `reserved` counts units held by open orders, which a cancel gives back."""
        errors: list[UserError] = []
        rules.in_range(quantity, 1, rules.MAX_RESTOCK, "quantity", errors, ("quantity",))
        raise_if_any(errors)
        # Stock plus what open orders may still give back must fit the contract's Int.
        headroom = rules.MAX_STOCK - self.stock - reserved
        rules.in_range(quantity, 1, headroom, "quantity (stock is capped)", errors, ("quantity",))
        raise_if_any(errors)
        self.stock += quantity
        self.record(ProductRestocked(self.id, quantity, self.stock))

    def has_stock(self, quantity: int) -> bool:
        return self.stock >= quantity

    def reserve(self, quantity: int) -> None:
        """Take stock for an order line; the caller has checked has_stock."""
        assert self.has_stock(quantity), "reserve() without enough stock"
        self.stock -= quantity

    def release(self, quantity: int) -> None:
        """Give back the stock of a cancelled order line."""
        self.stock += quantity
