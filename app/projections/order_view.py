"""The order view: each order as placed (customer, lines, totals) and where it stands now.

A batch is folded per order: an order placed in the batch is inserted already in its final
state (say PAID, if OrderPaid followed in the batch); an order placed before gets one update
with its last status, and a cancellation's reason.
"""

from __future__ import annotations

from app.events import OrderCancelled, OrderPaid, OrderPlaced, OrderShipped
from app.projections.base import Projection
from app.projections.change_keys import KeyKind
from app.projections.names import ProjectionName
from app.projections.tables import order_view

_FOLD = f"""
folded AS (  -- per order: as placed (if placed in the batch), and its last event's state
  SELECT aggregate_id,
    (array_agg(payload) FILTER (WHERE event_type = 'OrderPlaced'))[1] AS placed,
    (array_agg(occurred_at ORDER BY version DESC))[1] AS placed_or_updated_at,
    max(version) AS version,
    (array_agg(CASE event_type WHEN 'OrderPlaced' THEN 'PLACED' WHEN 'OrderPaid' THEN 'PAID'
       WHEN 'OrderShipped' THEN 'SHIPPED' ELSE 'CANCELLED' END ORDER BY version DESC))[1]
      AS status,
    (array_agg(payload->>'reason') FILTER (WHERE event_type = 'OrderCancelled'))[1] AS reason
  FROM events
  WHERE event_type IN ('OrderPlaced', 'OrderPaid', 'OrderShipped', 'OrderCancelled')
  GROUP BY aggregate_id
),
inserted AS (
  INSERT INTO order_view (id, customer_id, customer_name, customer_email, status, lines,
    item_count, total_cents, cancel_reason, placed_at, updated_at, version)
  SELECT aggregate_id, (placed->>'customer_id')::uuid, placed->>'customer_name',
    placed->>'customer_email', status,
    (SELECT coalesce(jsonb_agg(jsonb_build_object(
        'productId', (x->>'product_id')::uuid, 'sku', x->>'sku',
        'productName', x->>'product_name', 'quantity', (x->>'quantity')::integer,
        'unitPriceCents', (x->>'unit_price_cents')::bigint,
        'lineTotalCents', (x->>'line_total_cents')::bigint
      ) ORDER BY n), '[]'::jsonb)
     FROM jsonb_array_elements(placed->'lines') WITH ORDINALITY AS line(x, n)),
    (placed->>'item_count')::integer, (placed->>'total_cents')::bigint, reason,
    (placed->>'placed_at')::timestamptz, placed_or_updated_at, version
  FROM folded WHERE placed IS NOT NULL
  ORDER BY aggregate_id
),
updated AS (  -- orders placed in an earlier batch
  UPDATE order_view v
  SET status = f.status, updated_at = f.placed_or_updated_at, version = f.version,
    cancel_reason = coalesce(f.reason, v.cancel_reason)
  FROM folded f
  WHERE f.placed IS NULL AND v.id = f.aggregate_id
),
changed(key) AS (
  SELECT '{KeyKind.ORDER}:' || aggregate_id FROM events
  UNION SELECT '{KeyKind.CUSTOMER_ORDERS}:' || (payload->>'customer_id')::uuid FROM events
)
"""


class OrderView(Projection):
    name = ProjectionName.ORDER_VIEW
    aggregate_types = frozenset({"Order"})
    handles = frozenset({OrderPlaced, OrderPaid, OrderShipped, OrderCancelled})
    tables = (order_view,)
    fold = _FOLD
