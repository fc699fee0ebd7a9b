"""The product catalogue: each product's facts, its stock, and what orders not cancelled sold.

Order events may come before the product's ProductCreated (they travel on other partitions),
so a batch is folded into one delta per product and upserted: product facts replace, stock and
sales counters add, version takes the greatest. Stock is the initial stock plus restocks, less
what orders reserved, plus what cancellations released; version counts product events only.
"""

from __future__ import annotations

from app.events import (
    OrderCancelled,
    OrderPlaced,
    ProductCreated,
    ProductPriceChanged,
    ProductRestocked,
)
from app.projections.base import Projection
from app.projections.change_keys import KeyKind
from app.projections.names import ProjectionName
from app.projections.tables import product_catalogue

_FOLD = f"""
deltas AS (
  SELECT aggregate_id AS id, version, payload->>'sku' AS sku, payload->>'name' AS name,
    (payload->>'price_cents')::bigint AS price_cents,
    CASE event_type WHEN 'ProductCreated' THEN (payload->>'stock')::bigint
      WHEN 'ProductRestocked' THEN (payload->>'quantity')::bigint ELSE 0 END AS stock,
    0::bigint AS units_sold, 0::bigint AS revenue_cents
  FROM events
  WHERE event_type IN ('ProductCreated', 'ProductPriceChanged', 'ProductRestocked')
  UNION ALL  -- each order line reserves (placed) or releases (cancelled) its units
  SELECT (x->>'product_id')::uuid, NULL, NULL, NULL, NULL,
    -sign * (x->>'quantity')::bigint, sign * (x->>'quantity')::bigint,
    sign * (x->>'line_total_cents')::bigint
  FROM (SELECT payload, CASE event_type WHEN 'OrderPlaced' THEN 1 ELSE -1 END AS sign
        FROM events WHERE event_type IN ('OrderPlaced', 'OrderCancelled')) orders,
    jsonb_array_elements(payload->'lines') AS line(x)
),
written AS (
  INSERT INTO product_catalogue AS t (id, sku, name, price_cents, stock, units_sold,
    revenue_cents, version)
  SELECT id,
    (array_agg(sku ORDER BY version DESC) FILTER (WHERE sku IS NOT NULL))[1],
    (array_agg(name ORDER BY version DESC) FILTER (WHERE name IS NOT NULL))[1],
    (array_agg(price_cents ORDER BY version DESC) FILTER (WHERE price_cents IS NOT NULL))[1],
    sum(stock), sum(units_sold), sum(revenue_cents), coalesce(max(version), 0)
  FROM deltas GROUP BY id ORDER BY id
  ON CONFLICT (id) DO UPDATE SET
    sku = coalesce(excluded.sku, t.sku),
    name = coalesce(excluded.name, t.name),
    price_cents = coalesce(excluded.price_cents, t.price_cents),
    stock = t.stock + excluded.stock,
    units_sold = t.units_sold + excluded.units_sold,
    revenue_cents = t.revenue_cents + excluded.revenue_cents,
    version = greatest(t.version, excluded.version)
  RETURNING id
),
changed(key) AS (SELECT '{KeyKind.PRODUCT}:' || id FROM written)
"""


class ProductCatalogue(Projection):
    name = ProjectionName.PRODUCT_CATALOGUE
    aggregate_types = frozenset({"Product", "Order"})
    handles = frozenset(
        {ProductCreated, ProductPriceChanged, ProductRestocked, OrderPlaced, OrderCancelled}
    )
    tables = (product_catalogue,)
    fold = _FOLD
