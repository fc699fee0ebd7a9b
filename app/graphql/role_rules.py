"""Validation rules that keep each API role to its operations (see ``shop serve --role``).

The rule classes are made once, at import: strawberry's validation cache keys on them, and
a rule class made per request would defeat it.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    ASTValidationRule,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    ValidationRule,
)

from app.config.settings import Role

# Root query fields a command-role process still answers: introspection and its own identity.
_COMMAND_ROLE_QUERY_FIELDS = frozenset({"__typename", "__schema", "__type", "service"})


class QueryRoleRule(ValidationRule):
    """A query-role process refuses mutations."""

    def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
        if node.operation is OperationType.MUTATION:
            self.report_error(
                GraphQLError(
                    "this process serves the query role: send mutations to a process "
                    "started with `shop serve --role command` (or `--role all`)",
                    node,
                )
            )


class CommandRoleRule(ValidationRule):
    """A command-role process refuses subscriptions and read-model queries."""

    def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
        if node.operation is OperationType.SUBSCRIPTION or (
            node.operation is OperationType.QUERY and _reads_read_models(node)
        ):
            self.report_error(
                GraphQLError(
                    f"this process serves the command role: send {node.operation.value} "
                    "operations to a process started with `shop serve --role query` "
                    "(or `--role all`)",
                    node,
                )
            )


def _reads_read_models(node: OperationDefinitionNode) -> bool:
    names = {getattr(sel, "name", None) for sel in node.selection_set.selections}
    # Fragment spreads at the root have no name here; treat them as read-model reads.
    return any(name is None or name.value not in _COMMAND_ROLE_QUERY_FIELDS for name in names)


RULES_BY_ROLE: dict[Role, tuple[type[ASTValidationRule], ...]] = {
    Role.ALL: (),
    Role.COMMAND: (CommandRoleRule,),
    Role.QUERY: (QueryRoleRule,),
}
