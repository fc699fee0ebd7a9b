"""The order aggregate: line rules, placing with all-or-nothing stock reservation, and the
PLACED -> PAID -> SHIPPED / CANCELLED state machine. Pure Python, no database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.events import OrderCancelled, OrderPaid, OrderPlaced, OrderShipped, PlacedLine
from app.write.domain import rules
from app.write.domain.customer import Customer
from app.write.domain.errors import ErrorCode, Path, Rejected, UserError
from app.write.domain.order import LineRequest, Order, OrderStatus, check_lines
from app.write.domain.product import Product

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def rejection(action: Callable[[], object]) -> tuple[UserError, ...]:
    """The errors the action was rejected with."""
    with pytest.raises(Rejected) as info:
        action()
    return info.value.errors


def codes_and_fields(errors: tuple[UserError, ...]) -> list[tuple[ErrorCode, Path | None]]:
    return [(error.code, error.field) for error in errors]


def new_customer() -> Customer:
    return Customer.register(uuid4(), "ada@example.com", "Ada Lovelace", NOW)


def new_products(*stocks: int) -> dict[UUID, Product]:
    """Products SKU-0, SKU-1, ... priced 100, 200, ... cents, with the given stocks."""
    products = [
        Product.create(uuid4(), f"SKU-{i}", f"Product {i}", 100 * (i + 1), stock, NOW)
        for i, stock in enumerate(stocks)
    ]
    return {product.id: product for product in products}


def stocks(products: dict[UUID, Product]) -> list[int]:
    return [product.stock for product in products.values()]


def requests_for(products: dict[UUID, Product], *quantities: int) -> list[LineRequest]:
    return [LineRequest(pid, q) for pid, q in zip(products, quantities, strict=True)]


def placed(*quantities: int, stock: int = 10) -> tuple[Order, dict[UUID, Product]]:
    products = new_products(*[stock] * len(quantities))
    order = Order.place(uuid4(), new_customer(), requests_for(products, *quantities), products, NOW)
    return order, products


def order_in(status: OrderStatus) -> tuple[Order, dict[UUID, Product]]:
    """An order driven through the public transitions into the given status."""
    order, products = placed(2, 3)
    if status is OrderStatus.PAID or status is OrderStatus.SHIPPED:
        order.pay(None)
    if status is OrderStatus.SHIPPED:
        order.ship(None)
    if status is OrderStatus.CANCELLED:
        order.cancel(None, None, products)
    return order, products


# check_lines


@pytest.mark.parametrize("count", [0, rules.MAX_ORDER_LINES + 1])
def test_check_lines_refuses_line_count_out_of_bounds(count: int) -> None:
    lines = [LineRequest(uuid4(), 1) for _ in range(count)]
    errors = rejection(lambda: check_lines(lines))
    assert codes_and_fields(errors) == [(ErrorCode.VALIDATION, ("lines",))]


@pytest.mark.parametrize("count", [1, rules.MAX_ORDER_LINES])
def test_check_lines_accepts_line_count_at_bounds(count: int) -> None:
    check_lines([LineRequest(uuid4(), 1) for _ in range(count)])


@pytest.mark.parametrize("quantity", [0, -1, rules.MAX_LINE_QUANTITY + 1])
def test_check_lines_refuses_quantity_out_of_bounds_at_its_index(quantity: int) -> None:
    lines = [LineRequest(uuid4(), 1), LineRequest(uuid4(), quantity)]
    errors = rejection(lambda: check_lines(lines))
    assert codes_and_fields(errors) == [(ErrorCode.VALIDATION, ("lines", "1", "quantity"))]


def test_check_lines_accepts_quantity_at_bounds() -> None:
    check_lines([LineRequest(uuid4(), 1), LineRequest(uuid4(), rules.MAX_LINE_QUANTITY)])


def test_check_lines_refuses_repeated_product_on_the_later_line() -> None:
    twice = uuid4()
    lines = [LineRequest(twice, 1), LineRequest(uuid4(), 1), LineRequest(twice, 2)]
    errors = rejection(lambda: check_lines(lines))
    assert codes_and_fields(errors) == [(ErrorCode.VALIDATION, ("lines", "2", "productId"))]


def test_check_lines_reports_every_bad_line() -> None:
    twice = uuid4()
    lines = [LineRequest(twice, 0), LineRequest(twice, 1), LineRequest(uuid4(), 10_001)]
    errors = rejection(lambda: check_lines(lines))
    assert [error.field for error in errors] == [
        ("lines", "0", "quantity"),
        ("lines", "1", "productId"),
        ("lines", "2", "quantity"),
    ]


def test_check_lines_does_not_count_unparseable_ids_as_repeats() -> None:
    check_lines([LineRequest(None, 1), LineRequest(None, 1)])


# Order.place


def test_place_refuses_missing_customer() -> None:
    products = new_products(5)
    requests = requests_for(products, 1)
    errors = rejection(lambda: Order.place(uuid4(), None, requests, products, NOW))
    assert codes_and_fields(errors) == [(ErrorCode.NOT_FOUND, ("customerId",))]
    assert stocks(products) == [5]


def test_place_checks_lines_before_the_customer() -> None:
    errors = rejection(lambda: Order.place(uuid4(), None, [], {}, NOW))
    assert codes_and_fields(errors) == [(ErrorCode.VALIDATION, ("lines",))]


@pytest.mark.parametrize("missing_id", [uuid4(), None], ids=["unknown-id", "unparseable-id"])
def test_place_refuses_unknown_product_at_its_index(missing_id: UUID | None) -> None:
    products = new_products(5)
    requests = [*requests_for(products, 1), LineRequest(missing_id, 1)]
    errors = rejection(lambda: Order.place(uuid4(), new_customer(), requests, products, NOW))
    assert codes_and_fields(errors) == [(ErrorCode.NOT_FOUND, ("lines", "1", "productId"))]
    assert stocks(products) == [5]


def test_place_refuses_insufficient_stock_and_reserves_nothing() -> None:
    products = new_products(5, 2, 9)
    requests = requests_for(products, 5, 3, 1)
    errors = rejection(lambda: Order.place(uuid4(), new_customer(), requests, products, NOW))
    assert codes_and_fields(errors) == [(ErrorCode.INSUFFICIENT_STOCK, ("lines", "1", "quantity"))]
    assert stocks(products) == [5, 2, 9]


def test_place_reserves_stock_from_each_product() -> None:
    _, products = placed(2, 10, stock=10)
    assert stocks(products) == [8, 0]


def test_place_does_not_change_product_versions() -> None:
    _, products = placed(1, 1)
    assert [(p.version, len(p.pending)) for p in products.values()] == [(1, 1), (1, 1)]


def test_place_snapshots_each_line_in_request_order() -> None:
    products = new_products(10, 10, 10)
    first, second, third = products.values()
    requests = [LineRequest(third.id, 1), LineRequest(first.id, 2), LineRequest(second.id, 3)]
    order = Order.place(uuid4(), new_customer(), requests, products, NOW)
    assert order.lines == (
        PlacedLine.priced(third.id, "SKU-2", "Product 2", 300, 1),
        PlacedLine.priced(first.id, "SKU-0", "Product 0", 100, 2),
        PlacedLine.priced(second.id, "SKU-1", "Product 1", 200, 3),
    )


def test_place_counts_items_and_total() -> None:
    order, _ = placed(2, 3)  # 2 x 100 + 3 x 200
    assert (order.item_count, order.total_cents) == (5, 800)


def test_line_prices_stay_as_placed_when_the_product_price_changes() -> None:
    order, products = placed(2)
    next(iter(products.values())).change_price(999, None)
    assert order.lines[0].unit_price_cents == 100


def test_place_records_one_order_placed_with_the_customer_name_and_email() -> None:
    customer = new_customer()
    products = new_products(10, 10)
    order_id = uuid4()
    order = Order.place(order_id, customer, requests_for(products, 2, 3), products, NOW)
    assert (order.status, order.version, order.customer_id) == (OrderStatus.PLACED, 1, customer.id)
    assert order.pending == [
        (
            1,
            OrderPlaced(
                order_id, customer.id, "Ada Lovelace", "ada@example.com", order.lines, 5, 800, NOW
            ),
        )
    ]


@settings(deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, rules.MAX_LINE_QUANTITY),  # quantity
            st.integers(0, 50),  # stock left over
            st.integers(0, rules.MAX_PRICE_CENTS),  # price
        ),
        min_size=1,
        max_size=rules.MAX_ORDER_LINES,
    )
)
def test_any_valid_lines_within_stock_reserve_exactly_their_quantities(
    lines: list[tuple[int, int, int]],
) -> None:
    products = {
        p.id: p
        for p in (
            Product.create(uuid4(), f"S{i}", "W", price, quantity + left, NOW)
            for i, (quantity, left, price) in enumerate(lines)
        )
    }
    order = Order.place(
        uuid4(), new_customer(), requests_for(products, *[q for q, _, _ in lines]), products, NOW
    )
    assert stocks(products) == [left for _, left, _ in lines]
    assert order.item_count == sum(q for q, _, _ in lines)
    assert order.total_cents == sum(q * price for q, _, price in lines)


# State machine


def test_pay_then_ship_records_versions_1_2_3() -> None:
    order, _ = placed(1)
    statuses = [order.status]
    order.pay(expected_version=1)
    statuses.append(order.status)
    order.ship(expected_version=2)
    statuses.append(order.status)
    assert statuses == [OrderStatus.PLACED, OrderStatus.PAID, OrderStatus.SHIPPED]
    assert order.pending[1:] == [
        (2, OrderPaid(order.id, order.customer_id)),
        (3, OrderShipped(order.id, order.customer_id)),
    ]
    assert order.version == 3


TRANSITIONS: dict[str, Callable[[Order, dict[UUID, Product]], None]] = {
    "pay": lambda order, _: order.pay(None),
    "ship": lambda order, _: order.ship(None),
    "cancel": lambda order, products: order.cancel(None, None, products),
}


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (OrderStatus.PLACED, "ship"),
        (OrderStatus.PAID, "pay"),
        (OrderStatus.SHIPPED, "pay"),
        (OrderStatus.SHIPPED, "ship"),
        (OrderStatus.SHIPPED, "cancel"),
        (OrderStatus.CANCELLED, "pay"),
        (OrderStatus.CANCELLED, "ship"),
        (OrderStatus.CANCELLED, "cancel"),
    ],
)
def test_disallowed_transition_is_invalid_state_and_changes_nothing(
    status: OrderStatus, action: str
) -> None:
    order, products = order_in(status)
    before = (order.version, len(order.pending), stocks(products))
    errors = rejection(lambda: TRANSITIONS[action](order, products))
    assert codes_and_fields(errors) == [(ErrorCode.INVALID_STATE, ("orderId",))]
    assert order.status is status
    assert (order.version, len(order.pending), stocks(products)) == before


@pytest.mark.parametrize("status", [OrderStatus.PLACED, OrderStatus.PAID])
def test_cancel_releases_each_line_stock(status: OrderStatus) -> None:
    order, products = order_in(status)
    assert stocks(products) == [8, 7]
    order.cancel(None, None, products)
    assert order.status is OrderStatus.CANCELLED
    assert stocks(products) == [10, 10]


@pytest.mark.parametrize("status", [OrderStatus.PLACED, OrderStatus.PAID])
def test_cancel_records_order_cancelled_with_previous_status(status: OrderStatus) -> None:
    order, products = order_in(status)
    order.cancel("  out of stock  ", None, products)
    version = order.version
    assert order.pending[-1] == (
        version,
        OrderCancelled(
            order.id, order.customer_id, "out of stock", status.value, order.lines, 5, 800, NOW
        ),
    )
    assert order.cancel_reason == "out of stock"


@pytest.mark.parametrize("reason", [None, "", "   \t"])
def test_cancel_with_blank_reason_records_none(reason: str | None) -> None:
    order, products = placed(1)
    order.cancel(reason, None, products)
    event = order.pending[-1][1]
    assert isinstance(event, OrderCancelled)
    assert (event.reason, order.cancel_reason) == (None, None)


def test_cancel_accepts_reason_of_500_chars_after_trimming() -> None:
    order, products = placed(1)
    order.cancel(" " + "r" * rules.MAX_REASON_LENGTH + " ", None, products)
    assert order.cancel_reason == "r" * rules.MAX_REASON_LENGTH


@pytest.mark.parametrize("reason", ["r" * (rules.MAX_REASON_LENGTH + 1), "bad\x00reason"])
def test_cancel_refuses_bad_reason_and_changes_nothing(reason: str) -> None:
    order, products = placed(2)
    errors = rejection(lambda: order.cancel(reason, None, products))
    assert codes_and_fields(errors) == [(ErrorCode.VALIDATION, ("reason",))]
    assert (order.status, order.version, stocks(products)) == (OrderStatus.PLACED, 1, [8])


def test_versions_go_1_2_3_through_pay_and_cancel() -> None:
    order, products = placed(1)
    order.pay(1)
    order.cancel(None, 2, products)
    assert [version for version, _ in order.pending] == [1, 2, 3]


@pytest.mark.parametrize("action", ["pay", "ship", "cancel"])
def test_stale_expected_version_is_a_conflict_and_changes_nothing(action: str) -> None:
    order, products = order_in(OrderStatus.PAID)
    moves: dict[str, Callable[[], None]] = {
        "pay": lambda: order.pay(1),
        "ship": lambda: order.ship(1),
        "cancel": lambda: order.cancel(None, 1, products),
    }
    errors = rejection(moves[action])
    assert codes_and_fields(errors) == [(ErrorCode.VERSION_CONFLICT, ("expectedVersion",))]
    assert (order.status, order.version, stocks(products)) == (OrderStatus.PAID, 2, [8, 7])


def test_version_conflict_is_reported_before_invalid_state() -> None:
    order, products = order_in(OrderStatus.SHIPPED)
    errors = rejection(lambda: order.cancel(None, 1, products))
    assert codes_and_fields(errors) == [(ErrorCode.VERSION_CONFLICT, ("expectedVersion",))]


@settings(deadline=None)
@given(st.lists(st.integers(1, 20), min_size=1, max_size=10))
def test_cancel_gives_back_exactly_what_place_reserved(quantities: list[int]) -> None:
    order, products = placed(*quantities, stock=20)
    order.cancel(None, None, products)
    assert stocks(products) == [20] * len(quantities)


def test_cancel_never_pushes_stock_past_the_cap() -> None:
    product = Product(uuid4(), 1, "S", "W", 1, rules.MAX_STOCK)
    products = {product.id: product}
    order = Order.place(uuid4(), new_customer(), [LineRequest(product.id, 10)], products, NOW)
    # The 10 units the order holds count against the cap, so refilling them is refused...
    assert rejection(lambda: product.restock(10, reserved=10))
    # ...and cancelling gives them back without passing the cap.
    order.cancel(None, None, products)
    assert product.stock == rules.MAX_STOCK
