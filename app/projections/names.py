"""The projections' names.

Stored in projection_state and dead_letters rows, in Redis keys, consumer groups and
announcements, and given to `shop projections rebuild`: the values never change.
"""

from __future__ import annotations

from enum import StrEnum


class ProjectionName(StrEnum):
    ORDER_VIEW = "order_view"
    CUSTOMER_SUMMARY = "customer_summary"
    PRODUCT_CATALOGUE = "product_catalogue"
    DAILY_SALES = "daily_sales"
    ORDER_HISTORY = "order_history"
