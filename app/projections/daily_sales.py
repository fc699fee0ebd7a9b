"""Daily sales: one row per UTC day of placement, counting that day's orders.

A cancellation changes the row of the day its order was PLACED on (OrderCancelled repeats
placed_at): ordersPlaced keeps counting it, ordersCancelled counts it, and its items and total
leave itemsSold and revenue. Every column is a counter, so a batch is folded into one delta
per day and added in one upsert.
"""

from __future__ import annotations

from app.events import OrderCancelled, OrderPlaced
from app.projections.base import Projection
from app.projections.change_keys import KeyKind
from app.projections.names import ProjectionName
from app.projections.tables import daily_sales

_FOLD = f"""
deltas AS (
  SELECT ((payload->>'placed_at')::timestamptz AT TIME ZONE 'UTC')::date AS day,
    CASE event_type WHEN 'OrderPlaced' THEN 1 ELSE -1 END AS sign, event_type, payload
  FROM events WHERE event_type IN ('OrderPlaced', 'OrderCancelled')
),
written AS (
  INSERT INTO daily_sales AS t (day, orders_placed, orders_cancelled, items_sold, revenue_cents)
  SELECT day,
    count(*) FILTER (WHERE event_type = 'OrderPlaced'),
    count(*) FILTER (WHERE event_type = 'OrderCancelled'),
    sum(sign * (payload->>'item_count')::bigint),
    sum(sign * (payload->>'total_cents')::bigint)
  FROM deltas GROUP BY day ORDER BY day
  ON CONFLICT (day) DO UPDATE SET
    orders_placed = t.orders_placed + excluded.orders_placed,
    orders_cancelled = t.orders_cancelled + excluded.orders_cancelled,
    items_sold = t.items_sold + excluded.items_sold,
    revenue_cents = t.revenue_cents + excluded.revenue_cents
  RETURNING day
),
changed(key) AS (SELECT '{KeyKind.DAILY_SALES}:' || to_char(day, 'YYYY-MM-DD') FROM written)
"""


class DailySales(Projection):
    name = ProjectionName.DAILY_SALES
    aggregate_types = frozenset({"Order"})
    handles = frozenset({OrderPlaced, OrderCancelled})
    tables = (daily_sales,)
    fold = _FOLD
