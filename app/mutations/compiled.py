"""The compiled mutation path: a mutation answered without strawberry's execution.

A placeOrder through strawberry paid for the command (three statements) and, about as much
again, for GraphQL execution in Python: the operation's context and extensions, the
resolver's argument conversion, the payload type's field-by-field completion, the result's
serialization. Here each validated mutation document is planned once: which field, which
input type and command, which payload fields in which shape. Each request then coerces its
variables, builds the command, sends it on the bus and writes the payload's JSON itself.

The plan covers one mutation field (and `__typename`) whose selection reads the payload's
own fields: `userErrors`, `version`, `consistencyToken`, the aggregate's id. A payload's
read-model field (`order`, `customer`, `product`) waits for the projections and reads the
read store, which strawberry does (`NotCompilable`: the whole request goes there). Whatever
would end in an error before the command runs (a bad variable, an input the command cannot be
made of) goes to the reference executor too (`Fallback`), which words it. Once the command
has been sent the answer is this path's alone, whatever happens: an error then (the store
unreachable, a fault) is worded here, as strawberry's error masking words it (`Answered`),
because running the request again could run the command twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import strawberry
from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    get_named_type,
)
from graphql.execution.values import get_argument_values, get_variable_values
from strawberry.types.base import StrawberryList, StrawberryOptional, get_object_definition

from app.config.logs import current_request_id
from app.graphql.context import Context, Services
from app.graphql.errors import ClientError, masked
from app.mutations.resolvers import Mutation, payload_of
from app.queries.compiled import (
    Answered,
    Fallback,
    Field,
    InputConverter,
    NotCompilable,
    fields_of,
    fragments_of,
)
from app.security.principal import Principal

log = logging.getLogger("app.mutations")

_READ_MODEL_FIELDS = frozenset({"order", "customer", "product"})

Render = Callable[[Any], Any]


@dataclass(frozen=True)
class _Root:
    """The mutation field of a document: how its input becomes a command, its payload type."""

    field: Field
    input_type: type
    payload_type: type
    render: Render  # the payload object to the selection's JSON value


@dataclass(frozen=True)
class MutationPlan:
    """A validated mutation operation the compiled path answers."""

    schema: GraphQLSchema
    operation: OperationDefinitionNode
    keys: tuple[str, ...]  # the response keys, in order: the mutation's and any __typename
    root: _Root
    convert: Callable[[Any, type], Any]

    async def data(
        self,
        services: Services,
        context: Callable[[], Context],
        variables: Any,
        principal: Principal | None,
    ) -> str:
        root = self.root
        coerced = get_variable_values(
            self.schema, self.operation.variable_definitions or (), dict(variables or {})
        )
        if isinstance(coerced, list):
            raise Fallback("variables")
        try:
            assert root.field.definition is not None
            arguments = get_argument_values(root.field.definition, root.field.nodes[0], coerced)
            command = self.convert(arguments["input"], root.input_type).command()
        except (ValueError, GraphQLError) as error:
            raise Fallback(str(error)) from error
        # From here on the command may run: no Fallback.
        try:
            payload = await payload_of(services.bus, principal, command, root.payload_type)
            value = root.render(payload)
        except Exception as error:
            raise Answered(self._error(error)) from error
        return json.dumps(
            {key: value if key == root.field.key else "Mutation" for key in self.keys},
            separators=(",", ":"),
        )

    def _error(self, error: Exception) -> bytes:
        """The response strawberry gives when a mutation field fails (it is non-null, so the
        data is null), its message masked as app/graphql/errors.py masks it."""
        log.error("%s failed", self.root.field.name, exc_info=error)
        node = self.root.field.nodes[0]
        request_id = current_request_id.get()
        code, message = masked(error, request_id)
        location = node.loc.source.get_location(node.loc.start) if node.loc else None
        shown = isinstance(error, ClientError)  # shown as it is, as strawberry shows it
        entry: dict[str, Any] = {"message": str(error) if shown else message}
        if location is not None:
            entry["locations"] = [{"line": location.line, "column": location.column}]
        entry["path"] = [self.root.field.key]
        if not shown:
            entry["extensions"] = {"code": code, "requestId": request_id}
        return json.dumps({"data": None, "errors": [entry]}, separators=(",", ":")).encode()


class MutationCompiler:
    """Plans mutation documents for app/queries/compiled.py's Compiler (which parses,
    validates and caches them)."""

    def __init__(self, schema: strawberry.Schema) -> None:
        self._schema = schema._schema
        self._names = schema.config.name_converter
        self._convert = InputConverter(schema.schema_converter.scalar_registry, schema.config)
        self._fields = {
            self._names.from_field(f): f
            for f in get_object_definition(Mutation, strict=True).fields
        }

    def __call__(self, document: DocumentNode, operation: OperationDefinitionNode) -> MutationPlan:
        mutation_type = self._schema.mutation_type
        assert mutation_type is not None
        fields = fields_of([operation.selection_set], fragments_of(document), mutation_type)
        roots = [item for item in fields if item.name != "__typename"]
        if len(roots) != 1:
            raise NotCompilable("not one mutation field")  # several run one after another
        (item,) = roots
        definition = self._fields[item.name]
        (argument,) = definition.arguments
        input_type, payload_type = argument.type, definition.type
        assert isinstance(input_type, type)
        assert isinstance(payload_type, type)
        root = _Root(item, input_type, payload_type, self._render(item, payload_type))
        keys = tuple(field.key for field in fields)
        return MutationPlan(self._schema, operation, keys, root, self._convert)

    def _render(self, item: Field, kind: type) -> Render:
        """How to turn an object of a strawberry type into `item`'s selection."""
        assert item.definition is not None
        graphql_type = get_named_type(item.definition.type)
        assert isinstance(graphql_type, GraphQLObjectType)
        attributes = {
            self._names.from_field(f): (f.python_name, f.type)
            for f in get_object_definition(kind, strict=True).fields
        }
        parts: list[tuple[str, Render]] = []
        for child in item.children:
            if child.name == "__typename":
                parts.append((child.key, _constant(graphql_type.name)))
                continue
            if child.name in _READ_MODEL_FIELDS:
                raise NotCompilable(f"{child.name}: read from the read store")
            python_name, annotation = attributes[child.name]
            parts.append((child.key, self._value(child, python_name, annotation)))
        return _object(parts)

    def _value(self, item: Field, python_name: str, annotation: Any) -> Render:
        inner = annotation
        while isinstance(inner, StrawberryOptional):
            inner = inner.of_type
        if isinstance(inner, StrawberryList):
            element = inner.of_type
            while isinstance(element, StrawberryOptional):
                element = element.of_type
            if isinstance(element, type) and get_object_definition(element) is not None:
                render = self._render(item, element)
                return lambda obj: _each(getattr(obj, python_name), render)
            return lambda obj: _scalar_list(getattr(obj, python_name))
        return lambda obj: _scalar(getattr(obj, python_name))


def _constant(value: Any) -> Render:
    return lambda _: value


def _object(parts: list[tuple[str, Render]]) -> Render:
    return lambda obj: {key: render(obj) for key, render in parts}


def _each(values: Any, render: Render) -> Any:
    return None if values is None else [render(value) for value in values]


def _scalar_list(values: Any) -> Any:
    return None if values is None else [_scalar(value) for value in values]


def _scalar(value: Any) -> Any:
    if value is None or value is strawberry.UNSET:
        return None
    if isinstance(value, Enum):
        return value.name
    return value
