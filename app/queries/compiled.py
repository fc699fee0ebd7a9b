"""The compiled read path: a query document answered by one SQL statement that returns the
response's `data` as JSON, built by PostgreSQL from the read tables.

Strawberry (the reference executor) resolves a response field by field in Python: for a
page of twenty orders that is hundreds of resolver calls and objects per request, which cost
many times what PostgreSQL spends reading the rows. Here each validated document is turned,
once, into a plan; each request then binds its arguments and the caller's access into one
statement, after any `consistentWith` waits, and sends PostgreSQL's JSON text as it comes.

The plan covers the read-model fields of Query (order, orders, customer, customers, product,
products, salesReport, and `__typename`) and fragments and literal @skip/@include on them.
Everything else (introspection, `projections`, variable directives) and every
request that would end in an error (a bad argument, a refused caller, a malformed token)
goes to the reference executor, which words the error: `Fallback`. So the compiled path
never answers differently from strawberry; tests/read/test_compiled_queries.py checks it does
not, shape by shape, against the reference. Mutations are planned by
app/mutations/compiled.py (`MutationPlanner`), handed in by app/schema.py: this module, on the
read side, does not import the write side.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field
from datetime import date
from typing import Any, Protocol

from graphql import (
    BooleanValueNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    get_operation_ast,
    parse,
)
from graphql.execution.values import get_argument_values, get_variable_values
from graphql.validation import ASTValidationRule
from strawberry import Schema
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import validate_document
from strawberry.types.arguments import convert_argument

from app.graphql.context import Context, Services
from app.graphql.ids import parse_id
from app.projections.names import ProjectionName
from app.queries.inputs import OrderFilter, ProductFilter
from app.queries.json_sql import (
    CUSTOMER_FIELDS,
    DAILY_SALES_FIELDS,
    ORDER_CUSTOMER_FIELDS,
    ORDER_FIELDS,
    ORDER_HISTORY_FIELDS,
    ORDER_LINE_FIELDS,
    PRODUCT_FIELDS,
    Column,
    TooWide,
    cursor,
    json_object,
    literal,
    sql_of,
)
from app.queries.listings import (
    CUSTOMER_ORDERINGS,
    ORDERS_NEWEST,
    PRODUCT_ORDERINGS,
    OrderCriteria,
    like_escaped,
)
from app.queries.pagination import Ordering, decode_cursor, page_size
from app.queries.read_your_writes import (
    CUSTOMER_READS,
    ORDER_READS,
    PRODUCT_READS,
    SALES_READS,
    caught_up_with,
)
from app.queries.sales import report_days
from app.security.principal import Principal

PLAN_CACHE_SIZE = 1000
"""Distinct documents whose plans (or the finding that none applies) a process keeps."""


class Fallback(Exception):
    """This request is for the reference executor (it words errors, and covers everything)."""


class Answered(Exception):
    """The whole response body, errors included: for a request that may have written (a
    mutation whose command ran), which the reference executor must not run again."""

    def __init__(self, body: bytes) -> None:
        super().__init__("answered")
        self.body = body


class Answering(Protocol):
    """What a compiled operation does for each request."""

    async def data(
        self,
        services: Services,
        context: Callable[[], Context],
        variables: Any,
        principal: Principal | None,
    ) -> str:
        """The response's `data` as JSON text; `Fallback` for the reference executor,
        `Answered` for a response with errors that only this path may give."""
        ...


MutationPlanner = Callable[[DocumentNode, OperationDefinitionNode], Answering]
"""A mutation operation to its plan, or NotCompilable (app/mutations/compiled.py: the read
side does not import the write side; the schema hands the planner in)."""


class NotCompilable(Exception):
    """This document has something the compiled path does not cover."""


@dataclass(frozen=True)
class Field:
    """One response key of a selection: its field, the nodes merged into it, its subfields."""

    key: str
    name: str
    nodes: tuple[FieldNode, ...]
    definition: GraphQLField | None  # None for __typename
    children: tuple[Field, ...] = ()


@dataclass
class Statement:
    """One request's statement being written: its parameters, aliases and waits."""

    variables: Any
    principal: Principal | None
    convert: Callable[[Any, type], Any]  # a coerced input object to its strawberry input
    params: list[Any] = field(default_factory=list)
    waits: list[tuple[str, frozenset[ProjectionName]]] = field(default_factory=list)
    aliases: int = 0
    sql: str = ""

    def param(self, value: Any, cast: str) -> str:
        self.params.append(value)
        return f"${len(self.params)}::{cast}"

    def alias(self) -> str:
        self.aliases += 1
        return f"p{self.aliases}"

    def arguments(self, item: Field) -> dict[str, Any]:
        assert item.definition is not None
        return get_argument_values(item.definition, item.nodes[0], self.variables)

    def caller(self) -> Principal:
        if self.principal is None:
            raise Fallback("UNAUTHENTICATED")
        return self.principal

    def admin(self) -> Principal:
        principal = self.caller()
        if not principal.is_admin:
            raise Fallback("FORBIDDEN")
        return principal

    def wait(self, token: str | None, reads: frozenset[ProjectionName]) -> None:
        if token is not None:
            self.waits.append((token, reads))


# ------------------------------------------------------------------ selections


def fragments_of(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def _included(node: FieldNode | InlineFragmentNode | FragmentSpreadNode) -> bool:
    for directive in node.directives or ():
        name = directive.name.value
        if name not in ("skip", "include"):
            continue
        (argument,) = directive.arguments or ()
        if not isinstance(argument.value, BooleanValueNode):
            raise NotCompilable("@skip/@include on a variable")
        if argument.value.value == (name == "skip"):
            return False
    return True


def _collect(
    selection_set: SelectionSetNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    type_name: str,
    into: dict[str, list[FieldNode]],
) -> None:
    for selection in selection_set.selections:
        if not _included(selection):  # type: ignore[arg-type]
            continue
        if isinstance(selection, FieldNode):
            key = selection.alias.value if selection.alias else selection.name.value
            into.setdefault(key, []).append(selection)
        elif isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            if condition is None or condition.name.value == type_name:
                _collect(selection.selection_set, fragments, type_name, into)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments[selection.name.value]
            if fragment.type_condition.name.value == type_name:
                _collect(fragment.selection_set, fragments, type_name, into)


def fields_of(
    selection_sets: Sequence[SelectionSetNode],
    fragments: Mapping[str, FragmentDefinitionNode],
    parent: GraphQLObjectType,
) -> tuple[Field, ...]:
    grouped: dict[str, list[FieldNode]] = {}
    for selection_set in selection_sets:
        _collect(selection_set, fragments, parent.name, grouped)
    result = []
    for key, nodes in grouped.items():
        name = nodes[0].name.value
        if name == "__typename":
            result.append(Field(key, name, tuple(nodes), None))
            continue
        if name.startswith("__"):
            raise NotCompilable("introspection")
        definition = parent.fields[name]
        named = get_named_type(definition.type)
        children: tuple[Field, ...] = ()
        if isinstance(named, GraphQLObjectType):
            sets = [node.selection_set for node in nodes if node.selection_set is not None]
            children = fields_of(sets, fragments, named)
        result.append(Field(key, name, tuple(nodes), definition, children))
    return tuple(result)


# ------------------------------------------------------------------ objects


Nested = Callable[[Field, str, Statement], str]


def _object(
    item: Field,
    type_name: str,
    row: str,
    columns: Mapping[str, Column],
    statement: Statement,
    nested: Mapping[str, Nested] | None = None,
) -> str:
    pairs = []
    for child in item.children:
        if child.name == "__typename":
            value = literal(type_name)
        elif nested and child.name in nested:
            value = nested[child.name](child, row, statement)
        else:
            value = columns[child.name].at(row)
        pairs.append((child.key, value))
    return json_object(pairs)


def _order_customer(item: Field, row: str, statement: Statement) -> str:
    return _object(item, "OrderCustomer", row, ORDER_CUSTOMER_FIELDS, statement)


def _order_lines(item: Field, row: str, statement: Statement) -> str:
    line = _object(item, "OrderLine", "l.line", ORDER_LINE_FIELDS, statement)
    return (
        f"(SELECT coalesce(json_agg({line} ORDER BY l.n), '[]'::json) "
        f"FROM jsonb_array_elements({row}.lines) WITH ORDINALITY AS l(line, n))"
    )


def _order_history(item: Field, row: str, statement: Statement) -> str:
    # Up to the version the order shows: order_history may be an event ahead of order_view.
    entry = _object(item, "OrderHistoryEntry", "h", ORDER_HISTORY_FIELDS, statement)
    return (
        f"(SELECT coalesce(json_agg({entry} ORDER BY h.version), '[]'::json) "
        f"FROM order_history h WHERE h.order_id = {row}.id AND h.version <= {row}.version)"
    )


_ORDER_NESTED: dict[str, Nested] = {
    "customer": _order_customer,
    "lines": _order_lines,
    "history": _order_history,
}


def _order(item: Field, row: str, statement: Statement) -> str:
    return _object(item, "Order", row, ORDER_FIELDS, statement, _ORDER_NESTED)


def _customer_orders(item: Field, row: str, statement: Statement) -> str:
    args = statement.arguments(item)
    where = f"order_view.customer_id = {row}.id"
    listing = _Listing("order_view", where, ORDERS_NEWEST, "Order", _order)
    return _connection(item, listing, args["first"], args["after"], statement)


def _customer(item: Field, row: str, statement: Statement) -> str:
    nested = {"orders": _customer_orders}
    return _object(item, "Customer", row, CUSTOMER_FIELDS, statement, nested)


def _product(item: Field, row: str, statement: Statement) -> str:
    return _object(item, "Product", row, PRODUCT_FIELDS, statement)


def _daily_sales(item: Field, row: str, statement: Statement) -> str:
    return _object(item, "DailySales", row, DAILY_SALES_FIELDS, statement)


# ------------------------------------------------------------------ connections


@dataclass(frozen=True)
class _Listing:
    """A read table's rows that match `where` (SQL, parameters bound), in one ordering."""

    table: str
    where: str
    ordering: Ordering
    node_type: str
    node: Nested


_KEY_CASTS = {"time": "timestamptz", "uuid": "uuid", "int": "bigint", "text": "text"}


def _beyond(ordering: Ordering, values: Sequence[Any], statement: Statement) -> str:
    """Rows strictly after a cursor's values: as app/queries/pagination.py `_beyond`."""
    keys = ordering.keys
    exprs = [sql_of(key.expression) for key in keys]
    bounds = [statement.param(v, _KEY_CASTS[k.kind]) for k, v in zip(keys, values, strict=True)]
    if len({key.descending for key in keys}) == 1:
        operator = "<" if keys[0].descending else ">"
        return f"({', '.join(exprs)}) {operator} ({', '.join(bounds)})"

    def past(i: int, strictly: bool) -> str:
        operator = "<" if keys[i].descending else ">"
        return f"{exprs[i]} {operator}{'' if strictly else '='} {bounds[i]}"

    alternatives = [
        " AND ".join([*(f"{exprs[j]} = {bounds[j]}" for j in range(i)), past(i, True)])
        for i in range(len(keys))
    ]
    return f"{past(0, False)} AND ({' OR '.join(f'({a})' for a in alternatives)})"


def _connection(
    item: Field, listing: _Listing, first: int | None, after: str | None, statement: Statement
) -> str:
    """One page of a listing as the contract's connection type, in one scalar subquery."""
    try:
        size = page_size(first)
        values = None if after is None else decode_cursor(after, listing.ordering)
    except ValueError as error:
        raise Fallback(str(error)) from error
    ordering = listing.ordering
    keys = [sql_of(key.expression) for key in ordering.keys]
    order_by = ", ".join(
        f"{key} {'DESC' if sort.descending else 'ASC'}"
        for key, sort in zip(keys, ordering.keys, strict=True)
    )
    where = listing.where
    if values is not None:
        where = f"{where} AND {_beyond(ordering, values, statement)}"
    page = statement.alias()
    shown = statement.param(size, "int")
    labels = "".join(f", {key} AS _k{i}" for i, key in enumerate(keys))
    inner = (
        f"SELECT {listing.table}.*{labels}, row_number() OVER (ORDER BY {order_by}) AS _n "
        f"FROM {listing.table} WHERE {where} ORDER BY {order_by} "
        f"LIMIT {statement.param(size + 1, 'int')}"
    )
    row_cursor = cursor(ordering, [f"{page}._k{i}" for i in range(len(keys))])
    on_page = f"FILTER (WHERE {page}._n <= {shown})"
    prefix = listing.node_type

    def edge(child: Field) -> str:
        nested = {
            "cursor": lambda _i, _r, _s: row_cursor,
            "node": lambda node, row, st: listing.node(node, row, st),
        }
        return _object(child, f"{prefix}Edge", page, {}, statement, nested)

    def page_info(child: Field) -> str:
        columns = {
            "hasNextPage": Column(f"(count(*) > {shown})"),
            "endCursor": Column(f"(array_agg({row_cursor} ORDER BY {page}._n DESC) {on_page})[1]"),
        }
        return _object(child, "PageInfo", page, columns, statement)

    pairs = []
    for child in item.children:
        if child.name == "__typename":
            value = literal(f"{prefix}Connection")
        elif child.name == "edges":
            value = f"coalesce(json_agg({edge(child)} ORDER BY {page}._n) {on_page}, '[]'::json)"
        elif child.name == "pageInfo":
            value = page_info(child)
        else:  # totalCount: every row the filter matches, wherever the cursor stands
            value = f"(SELECT count(*) FROM {listing.table} WHERE {listing.where})"
        pairs.append((child.key, value))
    return f"(SELECT {json_object(pairs)} FROM ({inner}) AS {page})"


# ------------------------------------------------------------------ Query fields


_NULL = "NULL::json"


def _order_field(item: Field, statement: Statement) -> str:
    args = statement.arguments(item)
    principal = statement.caller()
    statement.wait(args["consistentWith"], ORDER_READS)
    key = parse_id(args["id"])
    if key is None:
        return _NULL
    where = f"order_view.id = {statement.param(key, 'uuid')}"
    if not principal.is_admin:  # someone else's order reads as not there
        own = principal.customer_id
        mine = (
            "false" if own is None else f"order_view.customer_id = {statement.param(own, 'uuid')}"
        )
        where = f"{where} AND {mine}"
    return f"(SELECT {_order(item, 'order_view', statement)} FROM order_view WHERE {where})"


def _orders_field(item: Field, statement: Statement) -> str:
    args = statement.arguments(item)
    principal = statement.caller()
    criteria = statement.convert(args["filter"], OrderFilter).criteria() if args["filter"] else None
    criteria = criteria or OrderCriteria()
    customer = criteria.customer_id
    if not principal.is_admin:
        if customer is not None and not principal.is_customer(customer):
            raise Fallback("FORBIDDEN")
        customer = principal.customer_id
    statement.wait(args["consistentWith"], ORDER_READS)
    where = []
    if criteria.matches_nothing:
        where.append("false")
    if customer is not None:
        where.append(f"order_view.customer_id = {statement.param(customer, 'uuid')}")
    if criteria.statuses is not None:
        statuses = sorted(set(criteria.statuses))
        where.append(f"order_view.status = ANY({statement.param(statuses, 'text[]')})")
    if criteria.placed_from is not None:
        start = statement.param(criteria.placed_from, "timestamptz")
        where.append(f"order_view.placed_at >= {start}")
    if criteria.placed_to is not None:
        end = statement.param(criteria.placed_to, "timestamptz")
        where.append(f"order_view.placed_at < {end}")
    if criteria.min_total_cents is not None:
        minimum = statement.param(criteria.min_total_cents, "bigint")
        where.append(f"order_view.total_cents >= {minimum}")
    listing = _Listing("order_view", " AND ".join(where) or "true", ORDERS_NEWEST, "Order", _order)
    return _connection(item, listing, args["first"], args["after"], statement)


def _customer_field(item: Field, statement: Statement) -> str:
    args = statement.arguments(item)
    if not statement.caller().may_see_customer(args["id"]):
        return _NULL  # someone else's profile reads as no such customer
    statement.wait(args["consistentWith"], CUSTOMER_READS)
    key = parse_id(args["id"])
    if key is None:
        return _NULL
    node = _customer(item, "customer_summary", statement)
    where = f"customer_summary.id = {statement.param(key, 'uuid')} AND customer_summary.version > 0"
    return f"(SELECT {node} FROM customer_summary WHERE {where})"


def _customers_field(item: Field, statement: Statement) -> str:
    args = statement.arguments(item)
    statement.admin()
    statement.wait(args["consistentWith"], CUSTOMER_READS)
    ordering = CUSTOMER_ORDERINGS[(args["orderBy"] and args["orderBy"].value) or "NEWEST"]
    listing = _Listing(
        "customer_summary", "customer_summary.version > 0", ordering, "Customer", _customer
    )
    return _connection(item, listing, args["first"], args["after"], statement)


def _product_field(item: Field, statement: Statement) -> str:
    args = statement.arguments(item)
    statement.wait(args["consistentWith"], PRODUCT_READS)
    key = parse_id(args["id"])
    if key is None:
        return _NULL
    node = _product(item, "product_catalogue", statement)
    where = (
        f"product_catalogue.id = {statement.param(key, 'uuid')} AND product_catalogue.version > 0"
    )
    return f"(SELECT {node} FROM product_catalogue WHERE {where})"


def _products_field(item: Field, statement: Statement) -> str:
    args = statement.arguments(item)
    statement.wait(args["consistentWith"], PRODUCT_READS)
    ordering = PRODUCT_ORDERINGS[(args["orderBy"] and args["orderBy"].value) or "NAME"]
    where = ["product_catalogue.version > 0"]
    if args["filter"]:
        wanted = statement.convert(args["filter"], ProductFilter)
        search, in_stock = wanted.search_text(), wanted.stock_wanted()
        if search:
            # The trigram index covers exactly this expression.
            pattern = statement.param(like_escaped(search), "text")
            where.append(
                "lower(product_catalogue.name) || ' ' || lower(product_catalogue.sku) "
                f"LIKE '%' || lower({pattern}) || '%' ESCAPE '\\'"
            )
        if in_stock is True:
            where.append("product_catalogue.stock > 0")
        elif in_stock is False:
            where.append("product_catalogue.stock <= 0")
    listing = _Listing("product_catalogue", " AND ".join(where), ordering, "Product", _product)
    return _connection(item, listing, args["first"], args["after"], statement)


def _sales_report_field(item: Field, statement: Statement) -> str:
    args = statement.arguments(item)
    statement.admin()
    statement.wait(args["consistentWith"], SALES_READS)
    start: date = args["from"]
    days = report_days(start, args["to"])
    node = _daily_sales(item, "r", statement)
    series = (
        f"SELECT {statement.param(start, 'date')} + o AS day "
        f"FROM generate_series(0, {statement.param(days, 'int')} - 1) AS o"
    )
    rows = (
        "SELECT d.day, s.orders_placed, s.orders_cancelled, s.items_sold, s.revenue_cents "
        f"FROM ({series}) AS d LEFT JOIN daily_sales AS s ON s.day = d.day"
    )
    return f"(SELECT coalesce(json_agg({node} ORDER BY r.day), '[]'::json) FROM ({rows}) AS r)"


_ROOT: dict[str, Callable[[Field, Statement], str]] = {
    "order": _order_field,
    "orders": _orders_field,
    "customer": _customer_field,
    "customers": _customers_field,
    "product": _product_field,
    "products": _products_field,
    "salesReport": _sales_report_field,
}


# ------------------------------------------------------------------ plans


@dataclass(frozen=True)
class Plan:
    """A validated query operation the compiled path answers."""

    schema: GraphQLSchema
    operation: OperationDefinitionNode
    fields: tuple[Field, ...]
    convert: Callable[[Any, type], Any]
    static: str | None = None  # the data, when the document reads no table

    def statement(
        self, variables: Mapping[str, Any] | None, principal: Principal | None
    ) -> Statement:
        """The request's statement, its parameters and waits; `Fallback` for any request
        the reference executor must answer (it would end in an error)."""
        coerced = get_variable_values(
            self.schema, self.operation.variable_definitions or (), dict(variables or {})
        )
        if isinstance(coerced, list):
            raise Fallback("variables")
        statement = Statement(coerced, principal, self.convert)
        pairs = []
        try:
            for item in self.fields:
                if item.name == "__typename":
                    pairs.append((item.key, literal("Query")))
                else:
                    pairs.append((item.key, _ROOT[item.name](item, statement)))
            statement.sql = f"SELECT {json_object(pairs)}::text"
        except (ValueError, GraphQLError, TooWide) as error:  # ClientError is a ValueError
            raise Fallback(str(error)) from error
        return statement

    async def data(
        self,
        services: Services,
        context: Callable[[], Context],
        variables: Any,
        principal: Principal | None,
    ) -> str:
        """The response's `data`, as JSON text; `Fallback` for the reference executor."""
        statement = self.statement(variables, principal)
        if self.static is not None:
            return self.static  # nothing to read: `{ __typename }`
        if statement.waits:
            waiting = context()
            try:
                await asyncio.gather(
                    *(caught_up_with(waiting, token, reads) for token, reads in statement.waits)
                )
            except ValueError as error:  # a malformed token, too many waits
                raise Fallback(str(error)) from error
        async with services.read_pool.acquire() as connection:
            text: str = await connection.fetchval(statement.sql, *statement.params)
        return text


class InputConverter:
    """strawberry's `convert_argument` for the filter inputs, with each input type's fields
    looked up once: strawberry resolves every field's name and type on every call, which
    was a tenth of a compiled request's time. The same kwargs, so the same input object."""

    def __init__(self, registry: Any, config: StrawberryConfig) -> None:
        self._registry = registry
        self._config = config
        self._fields: dict[type, tuple[dict[str, None], tuple[tuple[str, str, Any], ...]]] = {}

    def __call__(self, value: Any, kind: type) -> Any:
        known = self._fields.get(kind)
        if known is None:
            known = self._fields[kind] = self._input_fields(kind)
        implicit, fields = known
        kwargs: dict[str, Any] = dict(implicit)
        for graphql_name, python_name, field_type in fields:
            if graphql_name in value:
                kwargs[python_name] = convert_argument(
                    value[graphql_name], field_type, self._registry, self._config
                )
        return kind(**kwargs)

    def _input_fields(self, kind: type) -> tuple[dict[str, None], tuple[tuple[str, str, Any], ...]]:
        definition = kind.__strawberry_definition__  # type: ignore[attr-defined]
        assert definition.is_input, kind
        assert definition.from_input is None, kind
        implicit = {
            field.python_name: None
            for field in definition.fields
            if field.default_value is MISSING and field.default_factory is MISSING
        }
        fields = tuple(
            (
                self._config.name_converter.from_field(field),
                field.python_name,
                field.resolve_type(type_definition=definition),
            )
            for field in definition.fields
        )
        return implicit, fields


class Compiler:
    """Documents to plans, each compiled once per process (bounded, least recently used)."""

    def __init__(
        self,
        schema: Schema,
        rules: Sequence[type[ASTValidationRule]],
        max_tokens: int,
        capacity: int = PLAN_CACHE_SIZE,
        mutations: MutationPlanner | None = None,
    ) -> None:
        self._strawberry = schema
        self._schema = schema._schema
        self._rules = tuple(rules)
        self._max_tokens = max_tokens
        self._capacity = capacity
        self._mutations = mutations
        self._plans: OrderedDict[tuple[str, str | None], Answering | None] = OrderedDict()
        registry, config = schema.schema_converter.scalar_registry, schema.config
        self._convert = InputConverter(registry, config)

    def plan(self, query: str, operation_name: str | None) -> Answering | None:
        """The plan of an operation, or None when the reference executor must run it."""
        key = (query, operation_name)
        if key in self._plans:
            self._plans.move_to_end(key)
            return self._plans[key]
        plan = self._compile(query, operation_name)
        self._plans[key] = plan
        if len(self._plans) > self._capacity:
            self._plans.popitem(last=False)
        return plan

    def _compile(self, query: str, operation_name: str | None) -> Answering | None:
        try:
            document = parse(query, max_tokens=self._max_tokens)
        except GraphQLError:
            return None
        if validate_document(self._schema, document, self._rules):
            return None
        operation = get_operation_ast(document, operation_name)
        if operation is None:
            return None
        try:
            if operation.operation is OperationType.MUTATION and self._mutations is not None:
                return self._mutations(document, operation)
            if operation.operation is not OperationType.QUERY:
                return None
            fields = self._root_fields(document, operation)
        except NotCompilable:
            return None
        static = None
        if all(item.name == "__typename" for item in fields):
            static = json.dumps({item.key: "Query" for item in fields})
        return Plan(self._schema, operation, fields, self._convert, static)

    def _root_fields(
        self, document: DocumentNode, operation: OperationDefinitionNode
    ) -> tuple[Field, ...]:
        query_type = self._schema.query_type
        assert query_type is not None
        fields = fields_of([operation.selection_set], fragments_of(document), query_type)
        for item in fields:
            if item.name != "__typename" and item.name not in _ROOT:
                raise NotCompilable(item.name)
        return fields
