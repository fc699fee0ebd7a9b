"""Change keys: what a projector announces it changed, and what a subscription watches.

A key names one thing a read model shows: an order, a customer's orders, a customer, a
product, a day's sales. On the change feed it travels as `<kind>:<subject>`, such as
`order:<uuid>` or `daily-sales:2026-11-22`; this module alone writes and reads that form.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from uuid import UUID


class KeyKind(StrEnum):
    ORDER = "order"
    CUSTOMER_ORDERS = "customer-orders"
    CUSTOMER = "customer"
    PRODUCT = "product"
    DAILY_SALES = "daily-sales"


@dataclass(frozen=True)
class ChangeKey:
    """One changed thing: its kind and its id (its day, for daily sales)."""

    kind: KeyKind
    subject: UUID | date

    def __str__(self) -> str:
        # A UUID prints in its canonical form and a date as ISO 8601: what parse reads.
        return f"{self.kind}:{self.subject}"


# What a projector changed, as the fold wrote the keys: in the text form `parse` reads, sent on
# the change feed as they are (a projector never parses them).
ChangedKeys = set[str]


def order_key(order_id: UUID) -> ChangeKey:
    """An order's row in the order view changed."""
    return ChangeKey(KeyKind.ORDER, order_id)


def customer_orders_key(customer_id: UUID) -> ChangeKey:
    """One of a customer's orders changed."""
    return ChangeKey(KeyKind.CUSTOMER_ORDERS, customer_id)


def customer_key(customer_id: UUID) -> ChangeKey:
    """A customer's summary changed."""
    return ChangeKey(KeyKind.CUSTOMER, customer_id)


def product_key(product_id: UUID) -> ChangeKey:
    """A product's catalogue entry changed."""
    return ChangeKey(KeyKind.PRODUCT, product_id)


def daily_sales_key(day: date) -> ChangeKey:
    """A day's sales changed."""
    return ChangeKey(KeyKind.DAILY_SALES, day)


def parse(text: str) -> ChangeKey:
    """The key a `str(key)` wrote; ValueError for text that is not one."""
    kind, _, subject = text.partition(":")
    try:
        key_kind = KeyKind(kind)
        if key_kind is KeyKind.DAILY_SALES:
            return ChangeKey(key_kind, date.fromisoformat(subject))
        return ChangeKey(key_kind, UUID(subject))
    except ValueError:
        raise ValueError(f"not a change key: {text!r}") from None
