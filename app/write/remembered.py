"""What this process last knew of the customers and products its commands read.

A placeOrder read its customer and its products before its one write statement: three round
trips to PostgreSQL, each a socket write and a wake-up at both ends, which were most of what
the command cost the API process. But a customer never changes once registered, and every
product a command reads it writes back with the values it read (`was_*`), the write
statement matching only rows that still hold them (app/write/write_set.py). So a command's
first attempt, the unlocked one, may take both from here, and a placeOrder is one round trip:

- A product changed meanwhile (another API process sold or restocked it, or an operator
  wrote the row) fails the write statement, which writes nothing; it is forgotten here and
  the command runs again under locks, reading the store, as for any conflict.
- A refusal decided on what came from here (too little stock, a version that moved) is not
  trusted: the command runs again reading the store before it is answered
  (app/write/executor.py).
- Products are taken from here only while that pays: when more than a fifth of the recent
  attempts that took them conflicted (several API processes writing the same products),
  they are read from the store for a while. Customers still come from here.

Bounded: the least recently used go first. Everything a command wrote (the product's new
price, stock and version, a new customer) is kept once it committed; a later statement of
another command may have written the row again meanwhile, which the next write's check
finds. Nothing here is ever trusted without that check, so a stale entry costs an attempt,
never a wrong write.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

CAPACITY = 100_000
"""Customers, and products, each, that a process remembers."""
WINDOW = 100
"""Attempts with remembered products over which conflicts are counted."""
MOST_CONFLICTS = 0.2
"""Above this share of conflicts in a window, products are read from the store ..."""
PAUSE_S = 10.0
"""... for this long."""

CustomerRow = tuple[UUID, int, str, str, datetime]  # id, version, email, name, registered_at
ProductRow = tuple[UUID, int, str, str, int, int]  # id, version, sku, name, price, stock


class Remembered:
    """Customers and products as this process last read or wrote them."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._customers: OrderedDict[UUID, CustomerRow] = OrderedDict()
        self._products: OrderedDict[UUID, ProductRow] = OrderedDict()
        self._tries = 0
        self._conflicts = 0
        self._paused_until = 0.0

    def customer(self, customer_id: UUID) -> CustomerRow | None:
        row: CustomerRow | None = _get(self._customers, customer_id)
        return row

    def keep_customers(self, rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            _put(self._customers, row[0], tuple(row), self.capacity)

    def products(self, product_ids: Sequence[UUID]) -> list[ProductRow] | None:
        """Every one of the products, or None if one is not remembered (or products are
        read from the store for now)."""
        if time.monotonic() < self._paused_until:
            return None
        rows = []
        for product_id in product_ids:
            row = _get(self._products, product_id)
            if row is None:
                return None
            rows.append(row)
        return rows

    def keep_products(self, rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            _put(self._products, row[0], tuple(row), self.capacity)

    def forget_products(self, product_ids: Iterable[UUID]) -> None:
        for product_id in product_ids:
            self._products.pop(product_id, None)

    def settled(self, *, conflicted: bool) -> None:
        """An attempt that took products from here committed, or conflicted."""
        self._tries += 1
        self._conflicts += conflicted
        if self._tries >= WINDOW:
            if self._conflicts > MOST_CONFLICTS * self._tries:
                self._paused_until = time.monotonic() + PAUSE_S
            self._tries = self._conflicts = 0

    @property
    def paused(self) -> bool:
        """Whether products are read from the store for now."""
        return time.monotonic() < self._paused_until


def _get(rows: OrderedDict[UUID, Any], key: UUID) -> Any:
    row = rows.get(key)
    if row is not None:
        rows.move_to_end(key)
    return row


def _put(rows: OrderedDict[UUID, Any], key: UUID, row: Any, capacity: int) -> None:
    rows[key] = row
    rows.move_to_end(key)
    if len(rows) > capacity:
        rows.popitem(last=False)
