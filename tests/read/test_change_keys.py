"""Change keys: the form they travel in on the change feed, and reading it back."""

from __future__ import annotations

from datetime import date
from uuid import UUID

import pytest

from app.projections.change_keys import (
    ChangeKey,
    customer_key,
    customer_orders_key,
    daily_sales_key,
    order_key,
    parse,
    product_key,
)

ID = UUID("2f1c6a1e-7d1b-4e2a-9f3c-0b8d5e6a7c90")


@pytest.mark.parametrize(
    ("key", "text"),
    [
        (order_key(ID), f"order:{ID}"),
        (customer_orders_key(ID), f"customer-orders:{ID}"),
        (customer_key(ID), f"customer:{ID}"),
        (product_key(ID), f"product:{ID}"),
        (daily_sales_key(date(2026, 11, 22)), "daily-sales:2026-11-22"),
    ],
    ids=lambda value: str(value).split(":")[0],
)
def test_a_key_travels_as_kind_and_subject_and_reads_back_the_same(
    key: ChangeKey, text: str
) -> None:
    assert str(key) == text
    assert parse(text) == key


@pytest.mark.parametrize(
    "text", ["", "order", f"invoice:{ID}", "order:not-a-uuid", "daily-sales:22/11/2026"]
)
def test_text_that_is_no_key_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a change key"):
        parse(text)
