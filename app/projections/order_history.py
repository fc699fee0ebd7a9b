"""The order timeline: one row per order event, with the order's version and status after
it, oldest first when read (`Order.history`).

Each event adds its row; a redelivered one is skipped by the version guard, and the primary
key (order, version) makes a row written twice impossible anyway. Nothing is ever updated, so
a batch is one insert.
"""

from __future__ import annotations

from app.events import OrderCancelled, OrderPaid, OrderPlaced, OrderShipped
from app.projections.base import Projection
from app.projections.change_keys import KeyKind
from app.projections.names import ProjectionName
from app.projections.tables import order_history

_FOLD = f"""
written AS (
  INSERT INTO order_history (order_id, version, event, status, at)
  SELECT aggregate_id, version, event_type,
    CASE event_type WHEN 'OrderPlaced' THEN 'PLACED' WHEN 'OrderPaid' THEN 'PAID'
      WHEN 'OrderShipped' THEN 'SHIPPED' ELSE 'CANCELLED' END,
    occurred_at
  FROM events
  WHERE event_type IN ('OrderPlaced', 'OrderPaid', 'OrderShipped', 'OrderCancelled')
    -- Nothing here reads the payload, but an entry whose payload is not JSON is unreadable
    -- for every projection alike (it is parked, not half applied): this makes PostgreSQL
    -- parse it.
    AND payload IS NOT NULL
  ORDER BY aggregate_id, version
  ON CONFLICT (order_id, version) DO NOTHING
  RETURNING order_id
),
changed(key) AS (SELECT DISTINCT '{KeyKind.ORDER}:' || order_id FROM written)
"""


class OrderHistory(Projection):
    name = ProjectionName.ORDER_HISTORY
    aggregate_types = frozenset({"Order"})
    handles = frozenset({OrderPlaced, OrderPaid, OrderShipped, OrderCancelled})
    tables = (order_history,)
    fold = _FOLD
