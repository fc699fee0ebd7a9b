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
placed AS (
  SELECT * FROM events WHERE event_type = 'OrderPlaced'
),
latest AS (  -- each order's last status event in the batch
  SELECT DISTINCT ON (aggregate_id) aggregate_id, version, occurred_at,
    CASE event_type WHEN 'OrderPaid' THEN 'PAID' WHEN 'OrderShipped' THEN 'SHIPPED'
      ELSE 'CANCELLED' END AS status
  FROM events WHERE event_type IN ('OrderPaid', 'OrderShipped', 'OrderCancelled')
  ORDER BY aggregate_id, version DESC
),
reasons AS (
  SELECT aggregate_id, payload->>'reason' AS reason
  FROM events WHERE event_type = 'OrderCancelled'
),
inserted AS (
  INSERT INTO order_view (id, customer_id, customer_name, customer_email, status, lines,
    item_count, total_cents, cancel_reason, placed_at, updated_at, version)
  SELECT p.aggregate_id, (p.payload->>'customer_id')::uuid, p.payload->>'customer_name',
    p.payload->>'customer_email', coalesce(l.status, 'PLACED'),
    (SELECT coalesce(jsonb_agg(jsonb_build_object(
        'productId', (x->>'product_id')::uuid, 'sku', x->>'sku',
        'productName', x->>'product_name', 'quantity', (x->>'quantity')::integer,
        'unitPriceCents', (x->>'unit_price_cents')::bigint,
        'lineTotalCents', (x->>'unit_price_cents')::bigint * (x->>'quantity')::integer
      ) ORDER BY n), '[]'::jsonb)
     FROM jsonb_array_elements(p.payload->'lines') WITH ORDINALITY AS line(x, n)),
    (p.payload->>'item_count')::integer, (p.payload->>'total_cents')::bigint, r.reason,
    (p.payload->>'placed_at')::timestamptz, coalesce(l.occurred_at, p.occurred_at),
    coalesce(l.version, p.version)
  FROM placed p LEFT JOIN latest l USING (aggregate_id) LEFT JOIN reasons r USING (aggregate_id)
  ORDER BY p.aggregate_id
),
updated AS (
  UPDATE order_view v
  SET status = l.status, updated_at = l.occurred_at, version = l.version,
    cancel_reason = coalesce(r.reason, v.cancel_reason)
  FROM latest l LEFT JOIN reasons r USING (aggregate_id)
  WHERE v.id = l.aggregate_id
    AND NOT EXISTS (SELECT FROM placed p WHERE p.aggregate_id = l.aggregate_id)
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
