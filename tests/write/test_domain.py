"""The customer and product aggregates, the event contract and consistency tokens: pure Python.

Order placing and the order state machine are in test_domain_order.py.
"""

from __future__ import annotations

import base64
import json
import string
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.events import (
    EVENT_TYPES,
    CustomerRegistered,
    Event,
    OrderCancelled,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    PlacedLine,
    ProductCreated,
    ProductPriceChanged,
    ProductRestocked,
    UnknownEventError,
    consistency_token,
    decode_json,
    encode,
)
from app.events.consistency_token import (
    MAX_TOKEN_LENGTH,
    AggregateVersion,
    MalformedTokenError,
    TokenKey,
    decode_token,
    encode_token,
)
from app.write.domain import rules
from app.write.domain.customer import Customer
from app.write.domain.errors import ErrorCode, Path, Rejected, UserError
from app.write.domain.product import Product

NOW = datetime(2026, 11, 22, tzinfo=UTC)
SKU_ALPHABET = string.ascii_letters + string.digits + "-_"

valid_skus = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
valid_names = st.text(
    st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=rules.MAX_NAME_LENGTH
).filter(lambda text: text.strip() != "")


def rejection(action: Callable[[], object]) -> tuple[UserError, ...]:
    """The errors the action was rejected with."""
    with pytest.raises(Rejected) as info:
        action()
    return info.value.errors


def codes_and_fields(errors: tuple[UserError, ...]) -> list[tuple[ErrorCode, Path | None]]:
    return [(error.code, error.field) for error in errors]


def new_product(stock: int = 10, price_cents: int = 250) -> Product:
    return Product.create(uuid4(), "SKU-1", "Widget", price_cents, stock, NOW)


# Customer.register


def test_register_trims_and_lowercases_email() -> None:
    customer = Customer.register(uuid4(), "  Ada.Lovelace@Example.COM \t", "Ada", NOW)
    assert customer.email == "ada.lovelace@example.com"


def test_register_trims_name() -> None:
    customer = Customer.register(uuid4(), "ada@example.com", "  Ada Lovelace  ", NOW)
    assert customer.name == "Ada Lovelace"


def test_register_records_one_customer_registered_at_version_1() -> None:
    customer_id = uuid4()
    customer = Customer.register(customer_id, " ADA@example.com", " Ada ", NOW)
    assert customer.version == 1
    assert customer.pending == [
        (1, CustomerRegistered(customer_id, "ada@example.com", "Ada", NOW)),
    ]


@pytest.mark.parametrize(
    "email",
    [
        pytest.param("ada.example.com", id="no-at"),
        pytest.param("ada lovelace@example.com", id="space-in-local-part"),
        pytest.param("ada@exa mple.com", id="space-in-domain"),
        pytest.param("ada@example", id="no-dot-in-domain"),
        pytest.param("@example.com", id="empty-local-part"),
        pytest.param("ada@@example.com", id="two-ats"),
        pytest.param("ada@example..com", id="empty-domain-label"),
        pytest.param("ada@example.com.", id="trailing-dot"),
        pytest.param("", id="empty"),
        pytest.param("a" * 243 + "@example.com", id="255-chars"),
    ],
)
def test_register_rejects_malformed_email(email: str) -> None:
    errors = rejection(lambda: Customer.register(uuid4(), email, "Ada", NOW))
    assert codes_and_fields(errors) == [(ErrorCode.VALIDATION, ("email",))]


def test_register_accepts_email_of_exactly_254_chars() -> None:
    email = "a" * 242 + "@example.com"
    assert len(email) == rules.MAX_EMAIL_LENGTH
    assert Customer.register(uuid4(), email, "Ada", NOW).email == email


def test_register_rejects_email_containing_nul() -> None:
    # name and reason refuse NUL explicitly (PostgreSQL text cannot hold it); email must too.
    errors = rejection(lambda: Customer.register(uuid4(), "ada\x00@example.com", "Ada", NOW))
    assert codes_and_fields(errors) == [(ErrorCode.VALIDATION, ("email",))]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param(" \t\n ", id="blank-after-trim"),
        pytest.param("a" * 201, id="201-chars"),
        pytest.param("Ada\x00Lovelace", id="nul"),
        pytest.param("Ada\nLovelace", id="newline"),
        pytest.param("Ada\x7f", id="del"),
    ],
)
def test_register_rejects_bad_name(name: str) -> None:
    errors = rejection(lambda: Customer.register(uuid4(), "ada@example.com", name, NOW))
    assert codes_and_fields(errors) == [(ErrorCode.VALIDATION, ("name",))]


def test_register_accepts_name_of_200_chars_after_trimming() -> None:
    name = "a" * rules.MAX_NAME_LENGTH
    assert Customer.register(uuid4(), "ada@example.com", f"  {name}  ", NOW).name == name


def test_register_reports_bad_email_and_bad_name_together() -> None:
    errors = rejection(lambda: Customer.register(uuid4(), "not-an-email", "   ", NOW))
    assert codes_and_fields(errors) == [
        (ErrorCode.VALIDATION, ("email",)),
        (ErrorCode.VALIDATION, ("name",)),
    ]


# Product.create


def test_create_records_one_product_created_at_version_1() -> None:
    product_id = uuid4()
    product = Product.create(product_id, "SKU_1-a", "  Widget ", 1999, 7, NOW)
    assert (product.sku, product.name, product.price_cents, product.stock) == (
        "SKU_1-a",
        "Widget",
        1999,
        7,
    )
    assert product.version == 1
    assert product.pending == [(1, ProductCreated(product_id, "SKU_1-a", "Widget", 1999, 7, NOW))]


@pytest.mark.parametrize("sku", ["a", "a" * 64, "A-z_09"])
def test_create_accepts_sku_of_1_to_64_allowed_chars(sku: str) -> None:
    assert Product.create(uuid4(), sku, "Widget", 1, 1, NOW).sku == sku


@pytest.mark.parametrize(
    "sku",
    [
        pytest.param("", id="empty"),
        pytest.param("a" * 65, id="65-chars"),
        pytest.param("a b", id="space"),
        pytest.param("é", id="non-ascii-letter"),
        pytest.param(" abc", id="leading-space"),
        pytest.param("abc.def", id="dot"),
    ],
)
def test_create_rejects_bad_sku(sku: str) -> None:
    errors = rejection(lambda: Product.create(uuid4(), sku, "Widget", 1, 1, NOW))
    assert codes_and_fields(errors) == [(ErrorCode.VALIDATION, ("sku",))]


def test_create_rejects_sku_with_trailing_newline() -> None:
    errors = rejection(lambda: Product.create(uuid4(), "abc\n", "Widget", 1, 1, NOW))
    assert codes_and_fields(errors) == [(ErrorCode.VALIDATION, ("sku",))]


@settings(deadline=None)
@given(sku=valid_skus, foreign=st.characters(exclude_characters=SKU_ALPHABET), at=st.integers(0))
@example(sku="abc", foreign="\n", at=3)
def test_create_rejects_valid_sku_with_any_foreign_char_inserted(
    sku: str, foreign: str, at: int
) -> None:
    at = min(at, len(sku))
    bad = sku[:at] + foreign + sku[at:]
    errors = rejection(lambda: Product.create(uuid4(), bad, "Widget", 1, 1, NOW))
    assert codes_and_fields(errors) == [(ErrorCode.VALIDATION, ("sku",))]


@pytest.mark.parametrize("price_cents", [0, rules.MAX_PRICE_CENTS])
def test_create_accepts_price_at_bounds(price_cents: int) -> None:
    assert Product.create(uuid4(), "S", "W", price_cents, 0, NOW).price_cents == price_cents


@pytest.mark.parametrize("price_cents", [-1, rules.MAX_PRICE_CENTS + 1])
def test_create_rejects_price_out_of_bounds(price_cents: int) -> None:
    errors = rejection(lambda: Product.create(uuid4(), "S", "W", price_cents, 0, NOW))
    assert codes_and_fields(errors) == [(ErrorCode.VALIDATION, ("priceCents",))]


@pytest.mark.parametrize("stock", [0, rules.MAX_INITIAL_STOCK])
def test_create_accepts_stock_at_bounds(stock: int) -> None:
    assert Product.create(uuid4(), "S", "W", 0, stock, NOW).stock == stock


@pytest.mark.parametrize("stock", [-1, rules.MAX_INITIAL_STOCK + 1])
def test_create_rejects_stock_out_of_bounds(stock: int) -> None:
    errors = rejection(lambda: Product.create(uuid4(), "S", "W", 0, stock, NOW))
    assert codes_and_fields(errors) == [(ErrorCode.VALIDATION, ("stock",))]


def test_create_rejects_blank_name() -> None:
    errors = rejection(lambda: Product.create(uuid4(), "S", "  ", 0, 0, NOW))
    assert codes_and_fields(errors) == [(ErrorCode.VALIDATION, ("name",))]


def test_create_reports_every_broken_rule_at_once() -> None:
    errors = rejection(lambda: Product.create(uuid4(), "", "", -1, -1, NOW))
    assert [error.field for error in errors] == [("sku",), ("name",), ("priceCents",), ("stock",)]


@settings(deadline=None)
@given(
    sku=valid_skus,
    name=valid_names,
    price_cents=st.integers(0, rules.MAX_PRICE_CENTS),
    stock=st.integers(0, rules.MAX_INITIAL_STOCK),
)
def test_any_valid_product_round_trips_through_create_and_its_event(
    sku: str, name: str, price_cents: int, stock: int
) -> None:
    product_id = uuid4()
    product = Product.create(product_id, sku, name, price_cents, stock, NOW)
    [(version, event)] = product.pending
    expected = ProductCreated(product_id, sku, name.strip(), price_cents, stock, NOW)
    assert (version, event) == (1, expected)
    stored = json.dumps(encode(event))
    assert decode_json("ProductCreated", 1, stored) == expected


# Product.change_price and Product.restock


def test_change_price_records_new_and_previous_price() -> None:
    product = new_product(price_cents=250)
    product.change_price(300, expected_version=1)
    assert (product.price_cents, product.version) == (300, 2)
    assert product.pending[-1] == (2, ProductPriceChanged(product.id, 300, 250))


def test_change_price_without_expected_version_skips_the_check() -> None:
    product = new_product()
    product.change_price(1, expected_version=None)
    product.change_price(2, expected_version=None)
    assert [version for version, _ in product.pending] == [1, 2, 3]


def test_change_price_refuses_stale_expected_version() -> None:
    product = new_product(price_cents=250)
    errors = rejection(lambda: product.change_price(300, expected_version=2))
    assert codes_and_fields(errors) == [(ErrorCode.VERSION_CONFLICT, ("expectedVersion",))]
    assert (product.price_cents, product.version, len(product.pending)) == (250, 1, 1)


@pytest.mark.parametrize("price_cents", [-1, rules.MAX_PRICE_CENTS + 1])
def test_change_price_rejects_price_out_of_bounds(price_cents: int) -> None:
    product = new_product()
    errors = rejection(lambda: product.change_price(price_cents, expected_version=1))
    assert codes_and_fields(errors) == [(ErrorCode.VALIDATION, ("priceCents",))]


def test_restock_records_quantity_and_new_stock() -> None:
    product = new_product(stock=10)
    product.restock(5, reserved=0)
    assert (product.stock, product.version) == (15, 2)
    assert product.pending[-1] == (2, ProductRestocked(product.id, 5, 15))


@pytest.mark.parametrize("quantity", [1, rules.MAX_RESTOCK])
def test_restock_accepts_quantity_at_bounds(quantity: int) -> None:
    product = new_product(stock=0)
    product.restock(quantity, reserved=0)
    assert product.stock == quantity


@pytest.mark.parametrize("quantity", [0, -1, rules.MAX_RESTOCK + 1])
def test_restock_rejects_quantity_out_of_bounds(quantity: int) -> None:
    product = new_product(stock=10)
    errors = rejection(lambda: product.restock(quantity, reserved=0))
    assert codes_and_fields(errors) == [(ErrorCode.VALIDATION, ("quantity",))]
    assert (product.stock, product.version) == (10, 1)


def test_restock_may_fill_stock_up_to_the_cap() -> None:
    product = Product(uuid4(), 1, "S", "W", 1, rules.MAX_STOCK - 5)
    product.restock(5, reserved=0)
    assert product.stock == rules.MAX_STOCK == 2**31 - 1


def test_restock_counts_units_held_by_open_orders_against_the_cap() -> None:
    product = Product(uuid4(), 1, "S", "W", 1, rules.MAX_STOCK - 15)
    errors = rejection(lambda: product.restock(6, reserved=10))
    assert codes_and_fields(errors) == [(ErrorCode.VALIDATION, ("quantity",))]
    product.restock(5, reserved=10)
    assert product.stock == rules.MAX_STOCK - 10


def test_restock_past_the_stock_cap_is_rejected() -> None:
    product = Product(uuid4(), 1, "S", "W", 1, rules.MAX_STOCK - 5)
    errors = rejection(lambda: product.restock(6, reserved=0))
    assert codes_and_fields(errors) == [(ErrorCode.VALIDATION, ("quantity",))]
    assert (product.stock, product.version, product.pending) == (rules.MAX_STOCK - 5, 1, [])


# Events: encode / decode

LINE = PlacedLine.priced(uuid4(), "SKU-1", "Widget", 250, 3)
SAMPLE_EVENTS: list[Event] = [
    CustomerRegistered(uuid4(), "ada@example.com", "Ada Lovelace", NOW),
    ProductCreated(uuid4(), "SKU-1", "Widget ü", 250, 10, NOW),
    ProductPriceChanged(uuid4(), 300, 250),
    ProductRestocked(uuid4(), 5, 15),
    OrderPlaced(uuid4(), uuid4(), "Ada", "ada@example.com", (LINE, LINE), 6, 1500, NOW),
    OrderPaid(uuid4(), uuid4()),
    OrderShipped(uuid4(), uuid4()),
    OrderCancelled(uuid4(), uuid4(), "changed my mind", "PAID", (LINE,), 3, 750, NOW),
    OrderCancelled(uuid4(), uuid4(), None, "PLACED", (LINE,), 3, 750, NOW),
]


def test_sample_events_cover_every_event_type() -> None:
    assert {type(event) for event in SAMPLE_EVENTS} == set(EVENT_TYPES)


@pytest.mark.parametrize("event", SAMPLE_EVENTS, ids=lambda event: type(event).__name__)
def test_event_round_trips_through_json_text(event: Event) -> None:
    text = json.dumps(encode(event))
    assert decode_json(event.type_name(), event.schema_version, text) == event


def test_decode_refuses_unknown_event_type() -> None:
    with pytest.raises(UnknownEventError, match="ProductDeleted"):
        decode_json("ProductDeleted", 1, json.dumps({"product_id": str(uuid4())}))


@pytest.mark.parametrize("schema_version", [0, 2])
def test_decode_refuses_unknown_schema_version(schema_version: int) -> None:
    event = ProductPriceChanged(uuid4(), 300, 250)
    with pytest.raises(UnknownEventError, match="schema version"):
        decode_json("ProductPriceChanged", schema_version, json.dumps(encode(event)))


# Consistency tokens

KEY = TokenKey(b"k" * 32)
CALLER = "customer:0b6f2a7c-3b7e-4b43-9a57-1d1f0f7d9c11"
HEX = "0" * 31 + "1"
BASE64URL = string.ascii_letters + string.digits + "-_"


def _version(
    kind: str = "Order", version: int = 1, aggregate_id: UUID | None = None
) -> AggregateVersion:
    return AggregateVersion(kind, aggregate_id or uuid4(), version)


def _encode(versions: Iterable[AggregateVersion]) -> str:
    return encode_token(versions, KEY, CALLER)


def _decode(token: str) -> tuple[AggregateVersion, ...]:
    return decode_token(token, KEY, CALLER)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _sealed(raw: bytes) -> str:
    """Any bytes, signed as a token for CALLER: what only a holder of the key can make."""
    return consistency_token._seal(raw, KEY, CALLER)


def _token_for(body: object) -> str:
    return _sealed(json.dumps(body).encode())


def test_token_round_trips() -> None:
    versions = [_version("Order", 2), _version("Product", 7), _version("Customer", 1)]
    assert sorted(_decode(_encode(versions))) == sorted(versions)


def test_token_of_no_versions_round_trips() -> None:
    assert _decode(_encode([])) == ()


def test_token_keeps_only_the_highest_version_per_aggregate() -> None:
    same = uuid4()
    other = _version("Product", 4)
    versions = [_version("Order", 1, same), _version("Order", 3, same), other]
    versions.append(_version("Order", 2, same))
    assert sorted(_decode(_encode(versions))) == sorted([_version("Order", 3, same), other])


def test_token_is_url_safe_without_padding() -> None:
    token = _encode([_version(version=v) for v in range(1, 20)])
    assert set(token) <= set(BASE64URL + ".")


@settings(deadline=None)
@given(
    st.lists(
        st.builds(AggregateVersion, st.text(), st.uuids(), st.integers(min_value=1)), max_size=20
    )
)
def test_any_versions_round_trip_as_highest_per_aggregate(versions: list[AggregateVersion]) -> None:
    highest: dict[UUID, int] = {}
    for item in versions:
        highest[item.aggregate_id] = max(item.version, highest.get(item.aggregate_id, 0))
    decoded = _decode(_encode(versions))
    assert {item.aggregate_id: item.version for item in decoded} == highest
    assert len(decoded) == len(highest)


def test_a_token_made_with_another_key_is_refused() -> None:
    token = encode_token([_version()], TokenKey(b"o" * 32), CALLER)
    with pytest.raises(MalformedTokenError):
        _decode(token)


@pytest.mark.parametrize(
    "other",
    [
        pytest.param("customer:7e9c2b1a-0000-4000-8000-000000000000", id="another-customer"),
        pytest.param("admin:" + CALLER.partition(":")[2], id="an-admin-of-that-subject"),
        pytest.param("", id="anonymous"),
        pytest.param(CALLER + "\ud800", id="lone-surrogate"),
    ],
)
def test_a_token_is_refused_to_any_caller_but_its_own(other: str) -> None:
    versions = [_version()]
    with pytest.raises(MalformedTokenError):
        decode_token(_encode(versions), KEY, other)
    assert decode_token(encode_token(versions, KEY, other), KEY, other) == tuple(versions)


@settings(deadline=None)
@given(st.text(), st.text())
def test_a_token_for_one_caller_is_refused_to_any_other(owner: str, other: str) -> None:
    token = encode_token([_version()], KEY, owner)
    if other != owner:
        with pytest.raises(MalformedTokenError):
            decode_token(token, KEY, other)


def test_a_token_with_any_one_character_changed_is_refused() -> None:
    token = _encode([_version("Order", 3), _version("Customer", 2)])
    for position, character in enumerate(token):
        for replacement in {BASE64URL[(BASE64URL.find(character) + 1) % 64], "."} - {character}:
            changed = token[:position] + replacement + token[position + 1 :]
            with pytest.raises(MalformedTokenError):
                _decode(changed)


def test_a_genuine_mac_does_not_vouch_for_another_body() -> None:
    """Naming someone else's aggregate in one's own token: the body no longer matches."""
    mine, theirs = _version("Order", 1), _version("Order", 1)
    body, mac = _encode([mine]).split(".")
    forged = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged["a"][0][1] = theirs.aggregate_id.hex
    with pytest.raises(MalformedTokenError):
        _decode(_b64(json.dumps(forged, separators=(",", ":")).encode()) + "." + mac)


def test_tokens_issued_before_signing_are_refused() -> None:
    unsigned = _b64(json.dumps({"f": 1, "a": [["Order", HEX, 1, ["OrderPlaced"]]]}).encode())
    with pytest.raises(MalformedTokenError):
        _decode(unsigned)


def test_a_token_key_is_long_and_never_shown() -> None:
    assert "kkkk" not in repr(KEY)
    with pytest.raises(ValueError, match="32 bytes"):
        TokenKey(b"k" * 31)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param("abc", id="abc"),
        pytest.param("!!!!", id="not-base64"),
        pytest.param("a", id="one-char"),
        pytest.param(_b64(json.dumps({"f": 2, "a": []}).encode()), id="unsigned"),
        pytest.param(_b64(json.dumps({"f": 2, "a": []}).encode()) + ".", id="empty-mac"),
        pytest.param(_b64(json.dumps({"f": 2, "a": []}).encode()) + ".AAAA", id="short-mac"),
        pytest.param("." + _token_for({"f": 2, "a": []}).split(".")[1], id="no-body"),
        pytest.param(_token_for({"f": 2, "a": []}) + ".", id="two-dots"),
        pytest.param(_token_for({"f": 2, "a": []}) + "=", id="padded"),
        pytest.param(_sealed(b"not json"), id="not-json"),
        pytest.param(_sealed(b"\xff\xfe\xfa"), id="not-utf8"),
        pytest.param(_token_for({}), id="no-fields"),
        pytest.param(_token_for({"a": []}), id="no-format"),
        pytest.param(_token_for({"f": 2}), id="no-aggregates"),
        pytest.param(_token_for({"f": 1, "a": []}), id="format-1"),
        pytest.param(_token_for({"f": 3, "a": []}), id="unknown-format"),
        pytest.param(_token_for([1, 2]), id="json-list"),
        pytest.param(_token_for("f"), id="json-string"),
        pytest.param(_token_for({"f": 2, "a": [["Order", HEX, 0, []]]}), id="version-0"),
        pytest.param(_token_for({"f": 2, "a": [["Order", HEX, -3, []]]}), id="negative-version"),
        pytest.param(_token_for({"f": 2, "a": [["Order", HEX, True, []]]}), id="bool-version"),
        pytest.param(_token_for({"f": 2, "a": [["Order", HEX, 1.0, []]]}), id="float-version"),
        pytest.param(_token_for({"f": 2, "a": [["Order", HEX, "1", []]]}), id="string-version"),
        pytest.param(_token_for({"f": 2, "a": [["Order", "xyz", 1, []]]}), id="bad-uuid"),
        pytest.param(_token_for({"f": 2, "a": [["Order", HEX, 1, "Ab"]]}), id="types-not-list"),
        pytest.param(_token_for({"f": 2, "a": [["Order", HEX, 1, [1]]]}), id="type-not-text"),
        pytest.param(_token_for({"f": 2, "a": [["Order", HEX]]}), id="two-item-entry"),
        pytest.param(_token_for({"f": 2, "a": [7]}), id="int-entry"),
        pytest.param(_token_for({"f": 2, "a": 7}), id="int-aggregates"),
        pytest.param("A" * (MAX_TOKEN_LENGTH + 1), id="too-long"),
    ],
)
def test_decode_token_refuses_garbage(token: str) -> None:
    with pytest.raises(MalformedTokenError):
        _decode(token)


def test_decode_token_refuses_too_long_token_even_if_well_formed() -> None:
    token = _encode([_version(version=1) for _ in range(200)])
    assert len(token) > MAX_TOKEN_LENGTH
    with pytest.raises(MalformedTokenError):
        _decode(token)


def test_decode_token_refuses_deeply_nested_json_within_the_length_limit() -> None:
    token = _sealed(b"[" * 6000)
    assert len(token) <= MAX_TOKEN_LENGTH
    with pytest.raises(MalformedTokenError):
        _decode(token)


def test_decode_token_refuses_non_string_aggregate_type() -> None:
    with pytest.raises(MalformedTokenError):
        _decode(_token_for({"f": 2, "a": [[None, HEX, 1, []]]}))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
token_like_bodies = st.fixed_dictionaries(
    {
        "f": st.one_of(st.just(2), json_values),
        "a": st.lists(
            st.lists(st.one_of(st.uuids().map(lambda u: u.hex), json_values), max_size=4)
        ),
    }
)


@settings(deadline=None)
@given(st.one_of(json_values, token_like_bodies))
def test_decode_token_of_any_signed_json_returns_versions_or_raises_malformed(
    body: object,
) -> None:
    try:
        decoded = _decode(_token_for(body))
    except MalformedTokenError:
        return
    assert all(isinstance(item.version, int) and item.version >= 1 for item in decoded)


@settings(deadline=None)
@given(st.text(max_size=200))
def test_decode_token_of_any_text_raises_malformed(token: str) -> None:
    with pytest.raises(MalformedTokenError):
        _decode(token)
