"""Hypothesis strategies for GraphQL operations built from the service's own schema: random
root fields, random selections, and arguments of every kind, right and wrong (wrong types, huge
and negative numbers, NUL bytes, lone surrogates, odd unicode, malformed ids, forged cursors and
tokens, impossible dates). Values are mostly plausible with odd characters put in, so that they
get past the other rules to the code that must refuse or store them.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, timedelta, timezone
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    Undefined,
    build_schema,
)
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn, SearchStrategy

from app.schema import schema
from tests.support.client_errors import leaks_in

SDL = build_schema(schema.as_str())

# ------------------------------------------------------------------ values

# Characters that have broken, or could break, a store or a driver: NUL, lone surrogates,
# controls, bidi and zero-width marks, combining marks, astral characters, LIKE and quote
# characters. They are put into otherwise plausible values, so that they get past the other
# rules and reach the code that must refuse or store them.
ODD_CHARACTERS = [
    "\x00", "\ud800", "\udfff", "\x1f", "\x7f", "\n", "\u202e", "\u200f", "\u200b", "\ufeff",
    "\u0301", "\U0001f600", "\U0010ffff", "\uffff", "%", "_", "\\", "'", '"',
]  # fmt: skip
ODD_TEXT = [
    "", " ", "\u202eevil\u202c", "e\u0301\u0301\u0301\u0301", "\U0001f469\u200d\U0001f469",
    "'; DROP TABLE customers; --", "\\u0000", "x" * 10_000, "\U0001f600" * 201, "null", "{}",
]  # fmt: skip
WORDS = ["Ada", "Widget", "grace hopper", "changed my mind", "SKU-1", "ada@example.com"]
_STORE_BREAKERS = st.sampled_from(["\x00", "\ud800", "\udfff"])  # half the odd ones put in
_ALL_CHARACTERS = st.characters(exclude_categories=[])  # surrogates and controls too


def _mostly(right: SearchStrategy[Any], wrong: SearchStrategy[Any]) -> SearchStrategy[Any]:
    # One value in twelve is of the wrong type or shape: most operations get past coercion
    # to the resolvers, and some do not. (one_of would pick either half the time.)
    return st.sampled_from(range(12)).flatmap(lambda n: wrong if n == 11 else right)


def _weighted(*strategies: SearchStrategy[Any]) -> SearchStrategy[Any]:
    """Each strategy as often as the others (one_of would merge repeated ones)."""
    return st.sampled_from(range(len(strategies))).flatmap(lambda n: strategies[n])


def perturbed(plausible: SearchStrategy[str]) -> SearchStrategy[str]:
    """A plausible value with odd characters put in anywhere."""
    return st.tuples(
        plausible,
        st.lists(
            st.tuples(st.integers(0, 80), _STORE_BREAKERS | st.sampled_from(ODD_CHARACTERS)),
            min_size=1,
            max_size=3,
        ),
    ).map(_put_in)


def _put_in(drawn: tuple[str, list[tuple[int, str]]]) -> str:
    text, odd = drawn
    for position, character in odd:
        at = position % (len(text) + 1)
        text = text[:at] + character + text[at:]
    return text


def _unleaky(strings: SearchStrategy[str]) -> SearchStrategy[str]:
    # Answers may echo a value back; one that looks like a leak would be taken for one.
    return strings.filter(lambda text: not leaks_in(text))


texts = _unleaky(
    st.one_of(
        perturbed(st.sampled_from(WORDS)),
        st.sampled_from(ODD_TEXT),
        st.text(_ALL_CHARACTERS, max_size=40),
        st.text(max_size=300),
    )
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)

MALFORMED_IDS = [
    "", "0", "-1", "not-a-uuid", "00000000-0000-0000-0000-000000000000",
    "{7d0c1f0e-1d9e-4e59-9d07-6a1a5a0b0c0d}", "urn:uuid:7d0c1f0e-1d9e-4e59-9d07-6a1a5a0b0c0d",
    "7D0C1F0E1D9E4E599D076A1A5A0B0C0D", "7d0c1f0e-1d9e-4e59-9d07-6a1a5a0b0c0",
]  # fmt: skip
# The service's orderings and the kind of each sort key (app/queries/listings.py).
ORDERINGS = {
    "orders:newest": ("time", "uuid"), "customers:newest": ("time", "uuid"),
    "customers:spent": ("int", "uuid"), "customers:name": ("text", "uuid"),
    "products:name": ("text", "uuid"), "products:price-asc": ("int", "uuid"),
    "products:price-desc": ("int", "uuid"), "products:sold": ("int", "uuid"),
}  # fmt: skip
EVENT_TYPES = ["CustomerRegistered", "ProductCreated", "OrderPlaced", "OrderPaid", "Nope", ""]
EDGE_TIMES = [
    "0001-01-01T00:00:00+01:00", "0001-01-01T23:59:59+23:59", "9999-12-31T23:59:59-01:00",
    "9999-12-31T00:00:00-23:59", "0001-01-01T00:00:00", "9999-12-31T23:59:59.999999",
    "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:00:00+24:00", "2026",
]  # fmt: skip
INT_EDGES = [0, 1, -1, 100, 101, 10_000, 10_001, 10**6 + 1, 10**9 + 1, 2**31 - 1, -(2**31)]
LONG_EDGES = [0, -1, 10**12, 10**12 + 1, 2**53 - 1, -(2**53) + 1, 2**53, 5.0, 5.5]
EDGE_DATES = ["0001-01-01", "9999-12-31", "2026-02-29", "2026-02-30", "+12026-01-01", "2026-1-1"]


def forged(body: object) -> str:
    """base64url JSON without padding: how the service writes cursors and tokens."""
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


offsets = st.timedeltas(timedelta(hours=-23, minutes=-59), timedelta(hours=23, minutes=59))
moments = st.one_of(
    st.datetimes(timezones=st.just(UTC) | offsets.map(timezone)).map(lambda m: m.isoformat()),
    st.sampled_from(EDGE_TIMES),
)
hex_ids = st.uuids().map(lambda u: u.hex)
KEY_VALUES = {
    "time": _weighted(st.sampled_from(EDGE_TIMES), moments, perturbed(moments)),
    "int": st.integers(-(2**63), 2**63 - 1) | st.integers(),
    "text": _weighted(perturbed(st.sampled_from(WORDS)), texts),
    "uuid": _weighted(hex_ids, hex_ids, hex_ids, perturbed(hex_ids)),
}


@st.composite
def forged_cursors(draw: DrawFn, orderings: list[str]) -> str:
    """A cursor as the service would make one for one of the orderings, holding any values."""
    ordering = draw(st.sampled_from(orderings))
    keys = [draw(_mostly(KEY_VALUES[kind], json_values)) for kind in ORDERINGS[ordering]]
    version = draw(_mostly(st.just(1), json_values))
    return forged({"v": version, "o": ordering, "k": keys})


forged_tokens = st.builds(
    lambda form, entries: forged({"f": form, "a": entries}),
    _mostly(st.just(1), json_values),
    st.lists(
        st.tuples(
            st.sampled_from(["Customer", "Product", "Order", "", "\x00"]),
            hex_ids | texts,
            st.integers(-2, 2**70) | json_values,
            st.lists(st.sampled_from(EVENT_TYPES), max_size=2) | json_values,
        ).map(list),
        max_size=3,
    )
    | json_values,
)


def truncated(strings: SearchStrategy[str]) -> SearchStrategy[str]:
    return st.tuples(strings, st.integers(0, 200)).map(lambda pair: pair[0][: pair[1]])


def cursors(listing: str) -> SearchStrategy[str]:
    """Cursors for a list field, mostly of one of its own orderings (others are refused early)."""
    own = forged_cursors([name for name in ORDERINGS if name.startswith(f"{listing}:")])
    foreign = forged_cursors(sorted(ORDERINGS))
    return _weighted(own, own, truncated(own), foreign | texts)


tokens = st.one_of(forged_tokens, truncated(forged_tokens), texts)


@dataclass(frozen=True)
class Known:
    """Ids of rows that exist, so that operations reach real aggregates and rows."""

    customers: tuple[str, ...]
    products: tuple[str, ...]
    orders: tuple[str, ...]


def _strings_for(arg: str, known: Known) -> SearchStrategy[Any]:
    """Plausible strings for an argument or input field, by its name; odd ones among them."""
    everything = (*known.customers, *known.products, *known.orders)
    plausible: dict[str, SearchStrategy[str]] = {
        "email": st.emails(),
        "sku": st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
        "commandId": st.uuids().map(str) | _unleaky(st.text(max_size=130)),
        "id": st.sampled_from(everything), "customerId": st.sampled_from(known.customers),
        "productId": st.sampled_from(known.products), "orderId": st.sampled_from(known.orders),
    }  # fmt: skip
    if arg in ("consistentWith", "token"):
        return tokens
    base = plausible.get(arg, st.sampled_from(WORDS) | _unleaky(st.text(max_size=60)))
    if arg.endswith(("Id", "id")):
        base |= st.uuids().map(str)
        return _weighted(base, base, perturbed(base), st.sampled_from(MALFORMED_IDS) | texts)
    return _weighted(base, perturbed(base), perturbed(base), texts)


def scalar_values(name: str, arg: str, known: Known) -> SearchStrategy[Any]:
    """Values for a scalar, right ones chosen by the argument's or field's name."""
    if name == "ID":
        return _mostly(_strings_for(arg, known), st.integers(-(2**70), 2**70))
    if name == "String":
        return _strings_for(arg, known)
    if name == "Int":
        return _mostly(st.integers(0, 20), st.sampled_from(INT_EDGES) | st.integers())
    if name == "Long":
        return _mostly(st.integers(0, 10**6), st.sampled_from(LONG_EDGES) | st.integers())
    if name == "DateTime":
        return moments
    if name == "Date":
        near = st.dates(date(2025, 1, 1), date(2027, 12, 31))
        return (near | st.dates()).map(lambda day: day.isoformat()) | st.sampled_from(EDGE_DATES)
    if name == "Boolean":
        return st.booleans()
    return json_values


def input_values(type_: GraphQLInputType, arg: str, known: Known) -> SearchStrategy[Any]:
    """Values for an input type: mostly of its shape, sometimes anything at all."""
    if isinstance(type_, GraphQLNonNull):
        return input_values(type_.of_type, arg, known)
    wrong = json_values
    if isinstance(type_, GraphQLList):
        item = input_values(type_.of_type, arg, known)
        return _mostly(st.lists(item, max_size=4) | item, wrong)
    if isinstance(type_, GraphQLEnumType):
        return _mostly(st.sampled_from(sorted(type_.values)), wrong)
    if isinstance(type_, GraphQLInputObjectType):
        fields = {name: input_values(f.type, name, known) for name, f in type_.fields.items()}
        required = {
            n: fields[n] for n, f in type_.fields.items() if isinstance(f.type, GraphQLNonNull)
        }
        optional = {n: s for n, s in fields.items() if n not in required}
        whole = _input_objects(required, optional)
        return _mostly(whole, wrong | whole.map(lambda d: dict(list(d.items())[1:])))
    assert isinstance(type_, GraphQLScalarType)
    return _mostly(scalar_values(type_.name, arg, known), wrong)


def _input_objects(
    required: dict[str, SearchStrategy[Any]], optional: dict[str, SearchStrategy[Any]]
) -> SearchStrategy[dict[str, Any]]:
    """Input objects with every required field and most optional ones."""

    @st.composite
    def build(draw: DrawFn) -> dict[str, Any]:
        value = {name: draw(values) for name, values in required.items()}
        for name, values in optional.items():
            if draw(st.sampled_from(range(5))) != 0:
                value[name] = draw(values)
        return value

    return build()


# ------------------------------------------------------------------ documents

_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")
# Of six operations, how many leave an optional argument out: a token mostly fails the whole
# field it is given to, so it is given less often.
_SKIPPED = {"consistentWith": 5}


def literal(value: Any, type_: GraphQLInputType | None) -> str:
    """A value written inline in the document (JSON string escapes are GraphQL's too)."""
    named = _unwrapped(type_) if type_ is not None else None
    if isinstance(value, str) and isinstance(named, GraphQLEnumType) and value in named.values:
        return value
    if isinstance(value, dict):
        fields = named.fields if isinstance(named, GraphQLInputObjectType) else {}
        return "{" + ", ".join(
            f"{key}: {literal(item, fields[key].type if key in fields else None)}"
            for key, item in value.items() if _NAME.fullmatch(key)
        ) + "}"  # fmt: skip
    if isinstance(value, list):
        return "[" + ", ".join(literal(item, type_) for item in value) + "]"
    return json.dumps(value)


def _unwrapped(type_: Any) -> Any:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    return type_


@dataclass
class Document:
    """What an operation is being built of: its variables, declared as they are drawn."""

    draw: DrawFn
    known: Known
    declarations: list[str] = field(default_factory=list)
    variables: dict[str, Any] = field(default_factory=dict)

    def arguments(self, field: str, args: dict[str, Any]) -> str:
        written = []
        for name, arg in args.items():
            required = isinstance(arg.type, GraphQLNonNull) and arg.default_value is Undefined
            if not required and self.draw(st.sampled_from(range(6))) < _SKIPPED.get(name, 2):
                continue
            if name == "after":
                value = self.draw(_mostly(cursors(field), json_values))
            else:
                value = self.draw(input_values(arg.type, name, self.known))
            if self.draw(st.integers(0, 4)) == 0:
                written.append(f"{name}: {literal(value, arg.type)}")
            else:
                variable = f"v{len(self.declarations)}"
                self.declarations.append(f"${variable}: {arg.type}")
                self.variables[variable] = value
                written.append(f"{name}: ${variable}")
        return f"({', '.join(written)})" if written else ""

    def selection(self, type_: GraphQLOutputType, depth: int, always: str = "") -> str:
        named = _unwrapped(type_)
        if not isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
            return ""
        fields = {
            name: f for name, f in named.fields.items()
            if depth > 0 or not isinstance(_unwrapped(f.type), GraphQLObjectType)
        }  # fmt: skip
        chosen = self.draw(
            st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=4, unique=True)
        )
        parts = [always] if always else []
        for name in chosen:
            if always.startswith(name):
                continue
            parts.append(
                name
                + self.arguments(name, fields[name].args)
                + self.selection(fields[name].type, depth - 1)
            )
        if self.draw(st.integers(0, 5)) == 0:
            parts.append("__typename")
        return " { " + " ".join(parts) + " }"

    def text(self, kind: str, body: str) -> str:
        declared = f"({', '.join(self.declarations)})" if self.declarations else ""
        return f"{kind}{declared} {{ {body} }}"


@dataclass(frozen=True)
class Operation:
    kind: str  # "query" or "mutation"
    root: str  # the mutation's field, the key of its payload in `data`
    document: str
    variables: dict[str, Any]
    over_get: bool = False


@st.composite
def queries(draw: DrawFn, known: Known) -> Operation:
    document = Document(draw, known)
    assert SDL.query_type is not None
    roots = draw(st.lists(st.sampled_from(sorted(SDL.query_type.fields)), min_size=1, max_size=3))
    body = " ".join(
        f"q{index}: {name}"
        + document.arguments(name, SDL.query_type.fields[name].args)
        + document.selection(SDL.query_type.fields[name].type, depth=3)
        for index, name in enumerate(roots)
    )
    text = document.text("query", body)
    # Over GET too, when the URL stays short enough for any HTTP server to take it.
    short = len(text) + len(json.dumps(document.variables)) < 2000
    return Operation("query", "", text, document.variables, short and draw(st.booleans()))


@st.composite
def mutations(draw: DrawFn, known: Known) -> Operation:
    document = Document(draw, known)
    assert SDL.mutation_type is not None
    name = draw(st.sampled_from(sorted(SDL.mutation_type.fields)))
    root = SDL.mutation_type.fields[name]
    # userErrors always, to tell an accepted command from a refused one.
    body = name + document.arguments(name, root.args)
    body += document.selection(root.type, depth=3, always="userErrors { code message field }")
    return Operation("mutation", name, document.text("mutation", body), document.variables)
