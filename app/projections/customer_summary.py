"""Customer summaries: who the customer is, and counters over their orders not cancelled.

Order events may come before the customer's CustomerRegistered (they travel on other
partitions), so a batch is folded into one delta per customer and upserted: registration
facts replace, counters add, last_order_at and version take the greatest. The result is the
same whatever order events of different aggregates arrive in.
"""

from __future__ import annotations

from app.events import CustomerRegistered, OrderCancelled, OrderPlaced
from app.projections.base import Projection
from app.projections.change_keys import KeyKind
from app.projections.names import ProjectionName
from app.projections.tables import customer_summary

_FOLD = f"""
deltas AS (
  SELECT CASE event_type WHEN 'CustomerRegistered' THEN aggregate_id
      ELSE (payload->>'customer_id')::uuid END AS id,
    event_type, version, payload,
    CASE event_type WHEN 'OrderPlaced' THEN 1 WHEN 'OrderCancelled' THEN -1 ELSE 0 END AS sign
  FROM events
  WHERE event_type IN ('CustomerRegistered', 'OrderPlaced', 'OrderCancelled')
),
folded AS (
  SELECT id,
    (array_agg(payload->>'email' ORDER BY version DESC)
      FILTER (WHERE event_type = 'CustomerRegistered'))[1] AS email,
    (array_agg(payload->>'name' ORDER BY version DESC)
      FILTER (WHERE event_type = 'CustomerRegistered'))[1] AS name,
    (array_agg((payload->>'registered_at')::timestamptz ORDER BY version DESC)
      FILTER (WHERE event_type = 'CustomerRegistered'))[1] AS registered_at,
    sum(sign)::integer AS order_count,
    coalesce(sum(sign * (payload->>'total_cents')::bigint), 0)::bigint AS total_spent_cents,
    max((payload->>'placed_at')::timestamptz)
      FILTER (WHERE event_type = 'OrderPlaced') AS last_order_at,
    coalesce(max(version) FILTER (WHERE event_type = 'CustomerRegistered'), 0) AS version
  FROM deltas GROUP BY id
),
written AS (
  INSERT INTO customer_summary AS t (id, email, name, registered_at, order_count,
    total_spent_cents, last_order_at, version)
  SELECT * FROM folded ORDER BY id
  ON CONFLICT (id) DO UPDATE SET
    email = coalesce(excluded.email, t.email),
    name = coalesce(excluded.name, t.name),
    registered_at = coalesce(excluded.registered_at, t.registered_at),
    order_count = t.order_count + excluded.order_count,
    total_spent_cents = t.total_spent_cents + excluded.total_spent_cents,
    last_order_at = greatest(t.last_order_at, excluded.last_order_at),
    version = greatest(t.version, excluded.version)
  RETURNING id
),
changed(key) AS (SELECT '{KeyKind.CUSTOMER}:' || id FROM written)
"""


class CustomerSummary(Projection):
    name = ProjectionName.CUSTOMER_SUMMARY
    aggregate_types = frozenset({"Customer", "Order"})
    handles = frozenset({CustomerRegistered, OrderPlaced, OrderCancelled})
    tables = (customer_summary,)
    fold = _FOLD
