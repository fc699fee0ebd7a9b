"""A command's writes in one statement: its rows, its events, its idempotency record and the
NOTIFY, one round trip, which fails and writes nothing if a row the command read has changed.

Each repository and the outbox hand over what they would write as columns (one array per
column); one fixed statement unnests them into data-modifying CTEs. Whatever the command,
the statement is the same text, so it is prepared once per connection and nothing is
compiled per command. Foreign keys and the stock check are checked as for separate
statements (at the end of the statement), and a unique violation names its constraint as
before. Each round trip costs a socket write and a wake-up on both ends: a placeOrder went
from seven writing round trips to one.

Each row the command read and writes back carries the values it was read with (`was_*`),
and the update matches only a row that still holds them; an idempotency record goes in only
if none is there. Unless every row is matched, `write_unchanged` raises serialization_failure
(migration w0006) and the statement writes nothing. Under locks that cannot happen; without
them (a command's first attempt, app/write/unit_of_work.py) it is how a command finds out
that another one came between its reads and its write. The statement locks those rows before
it writes them, orders then products, each in id order, as a locking command does
(app/write/handlers.py): statements writing the same rows wait for each other, never
deadlock. The checks are in the statement's final SELECT, which runs before the inserts that
it does not read (PostgreSQL finishes those at the end of the statement): a command whose
commandId another one recorded meanwhile fails as a conflict, runs again and replays that
result, rather than failing on the email or sku the other one took.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from app.write.outbox import NOTIFY_CHANNEL

Columns = Mapping[str, Sequence[Any]]
Target = tuple[tuple[str, str], ...]

# Each target's (parameter, SQL array type) per column, in the order of its rows' values.
NEW_CUSTOMERS: Target = (("c_id", "uuid"), ("c_email", "text"), ("c_name", "text"),
                  ("c_version", "integer"), ("c_at", "timestamptz"))  # fmt: skip
NEW_PRODUCTS: Target = (("p_id", "uuid"), ("p_sku", "text"), ("p_name", "text"),
                 ("p_price", "bigint"), ("p_stock", "bigint"), ("p_version", "integer"),
                 ("p_at", "timestamptz"))  # fmt: skip
CHANGED_PRODUCTS: Target = (("pu_id", "uuid"), ("pu_price", "bigint"), ("pu_stock", "bigint"),
                     ("pu_version", "integer"), ("pu_was_price", "bigint"),
                     ("pu_was_stock", "bigint"), ("pu_was_version", "integer"))  # fmt: skip
NEW_ORDERS: Target = (("o_id", "uuid"), ("o_customer", "uuid"), ("o_status", "text"),
               ("o_reason", "text"), ("o_version", "integer"), ("o_at", "timestamptz"))  # fmt: skip
NEW_LINES: Target = (("l_order", "uuid"), ("l_no", "smallint"), ("l_product", "uuid"),
              ("l_sku", "text"), ("l_name", "text"), ("l_price", "bigint"),
              ("l_quantity", "integer"))  # fmt: skip
CHANGED_ORDERS: Target = (("ou_id", "uuid"), ("ou_status", "text"), ("ou_reason", "text"),
                   ("ou_version", "integer"), ("ou_was_version", "integer"))  # fmt: skip
EVENTS: Target = (("e_id", "uuid"), ("e_aggregate_type", "text"), ("e_aggregate_id", "uuid"),
           ("e_version", "integer"), ("e_type", "text"), ("e_schema", "smallint"),
           ("e_payload", "text"), ("e_at", "timestamptz"))  # fmt: skip
RECORDS: Target = (("r_caller", "text"), ("r_command", "text"), ("r_name", "text"),
            ("r_hash", "text"), ("r_result", "text"), ("r_at", "timestamptz"))  # fmt: skip

_TARGETS = (NEW_CUSTOMERS, NEW_PRODUCTS, CHANGED_PRODUCTS, NEW_ORDERS, NEW_LINES,
            CHANGED_ORDERS, EVENTS, RECORDS)  # fmt: skip
PARAMETERS = tuple(name for target in _TARGETS for name, _ in target)


_PLACE = {name: f"${n}" for n, name in enumerate(PARAMETERS, start=1)}


def _array(name: str) -> str:
    kind = dict(column for target in _TARGETS for column in target)[name]
    return f"CAST({_PLACE[name]} AS {kind}[])"


def _count(name: str) -> str:
    return f"cardinality({_array(name)})"


def _unnest(columns: Iterable[tuple[str, str]], alias: str) -> str:
    arrays = ", ".join(_array(name) for name, _ in columns)
    names = ", ".join(name for name, _ in columns)
    return f"unnest({arrays}) AS {alias}({names})"


WRITE = f"""
WITH locked_orders AS (
  SELECT FROM orders WHERE id = ANY({_array("ou_id")}) ORDER BY id FOR UPDATE
), locked_products AS (
  SELECT FROM products
  WHERE id = ANY({_array("pu_id")}) AND (SELECT count(*) FROM locked_orders) >= 0
  ORDER BY id FOR UPDATE
), new_customers AS (
  INSERT INTO customers (id, email, name, version, registered_at)
  SELECT * FROM {_unnest(NEW_CUSTOMERS, "c")}
), new_products AS (
  INSERT INTO products (id, sku, name, price_cents, stock, version, created_at)
  SELECT * FROM {_unnest(NEW_PRODUCTS, "p")}
), changed_products AS (
  UPDATE products SET price_cents = u.pu_price, stock = u.pu_stock, version = u.pu_version
  FROM {_unnest(CHANGED_PRODUCTS, "u")}
  WHERE products.id = u.pu_id AND products.price_cents = u.pu_was_price
    AND products.stock = u.pu_was_stock AND products.version = u.pu_was_version
    AND (SELECT count(*) FROM locked_products) >= 0
  RETURNING 1
), new_orders AS (
  INSERT INTO orders (id, customer_id, status, cancel_reason, version, placed_at)
  SELECT * FROM {_unnest(NEW_ORDERS, "o")}
), new_lines AS (
  INSERT INTO order_lines
    (order_id, line_no, product_id, sku, product_name, unit_price_cents, quantity)
  SELECT * FROM {_unnest(NEW_LINES, "l")}
), changed_orders AS (
  UPDATE orders SET status = u.ou_status, cancel_reason = u.ou_reason, version = u.ou_version
  FROM {_unnest(CHANGED_ORDERS, "u")}
  WHERE orders.id = u.ou_id AND orders.version = u.ou_was_version
    AND (SELECT count(*) FROM locked_products) >= 0
  RETURNING 1
), new_events AS (
  INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, event_type,
                      schema_version, payload, occurred_at)
  SELECT e_id, e_aggregate_type, e_aggregate_id, e_version, e_type, e_schema,
         CAST(e_payload AS jsonb), e_at
  FROM {_unnest(EVENTS, "e")}
), new_records AS (
  INSERT INTO idempotency (caller, command_id, command_name, input_hash, result, created_at)
  SELECT r_caller, r_command, r_name, r_hash, CAST(r_result AS jsonb), r_at
  FROM {_unnest(RECORDS, "r")}
  ON CONFLICT DO NOTHING
  RETURNING 1
)
SELECT write_unchanged(
  (SELECT count(*) FROM changed_products) = {_count("pu_id")}
  AND (SELECT count(*) FROM changed_orders) = {_count("ou_id")}
  AND (SELECT count(*) FROM new_records) = {_count("r_command")}
),
-- NOTIFY is transactional: the relay hears it only once the events are visible.
CASE WHEN {_count("e_id")} > 0 THEN pg_notify('{NOTIFY_CHANNEL}', '') END
"""  # every name in it is a constant of this module


def parameters(*parts: Columns) -> list[Sequence[Any]]:
    """The statement's parameters, in order: the columns the parts hand over, every other
    one empty."""
    merged: dict[str, Sequence[Any]] = dict.fromkeys(PARAMETERS, ())
    for part in parts:
        unknown = part.keys() - merged.keys()
        assert not unknown, f"not a column of the write statement: {sorted(unknown)}"
        merged.update(part)
    return [list(values) for values in merged.values()]


def columns(target: Target, rows: Iterable[Sequence[Any]]) -> dict[str, list[Any]]:
    """Rows for one target (tuples in its column order), as one list per column."""
    lists: list[list[Any]] = [[] for _ in target]
    for row in rows:
        for values, value in zip(lists, row, strict=True):
            values.append(value)
    return {name: values for (name, _), values in zip(target, lists, strict=True)}
