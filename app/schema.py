"""Builds the GraphQL schema: the one place the feature types are merged."""

from __future__ import annotations

from dataclasses import dataclass

import strawberry
from graphql import specified_rules
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.config import StrawberryConfig

from app.config.settings import Role, Settings
from app.graphql.errors import MaskUnexpectedErrors
from app.graphql.role_rules import RULES_BY_ROLE
from app.graphql.scalars import SCALARS
from app.mutations.compiled import MutationCompiler
from app.mutations.resolvers import Mutation
from app.queries.compiled import Compiler
from app.queries.resolvers import ReadModelQuery
from app.queries.service import ServiceQuery
from app.subscriptions.resolvers import Subscription


@strawberry.type
class Query(ReadModelQuery, ServiceQuery):
    """Every read the API offers."""


@dataclass(frozen=True)
class Limits:
    """What one GraphQL document may ask for (docs/security.md)."""

    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 2000
    introspection: bool = True


def limits_of(settings: Settings) -> Limits:
    return Limits(
        max_depth=settings.max_query_depth,
        max_aliases=settings.max_query_aliases,
        max_tokens=settings.max_query_tokens,
        introspection=settings.introspection,
    )


def validation_rules(role: Role, limits: Limits) -> tuple[type[ASTValidationRule], ...]:
    """The rules a document must pass here beyond the specification's."""
    return (
        *RULES_BY_ROLE[role],
        depth_rule(limits.max_depth, None),
        alias_rule(limits.max_aliases),
        *(() if limits.introspection else (NoSchemaIntrospectionCustomRule,)),
    )


def _extensions(
    rules: tuple[type[ASTValidationRule], ...], limits: Limits
) -> list[type[SchemaExtension] | object]:
    # The rule classes are made once per schema, not per request: strawberry's validation
    # cache keys on them, and strawberry's own limiter extensions, made per request, would
    # make a new class each time and never hit the cache.
    return [
        # The token limit is a parser option, part of the parser cache's key.
        lambda: MaxTokensLimiter(limits.max_tokens),
        ParserCache,
        ValidationCache,
        # A factory, not an instance: strawberry makes one per request.
        lambda: AddValidationRules(list(rules)),
        MaskUnexpectedErrors,
    ]


def create_schema(role: Role = Role.ALL, limits: Limits | None = None) -> strawberry.Schema:
    """The schema one process serves; the role and the limits only add validation rules."""
    limits = limits or Limits()
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=_extensions(validation_rules(role, limits), limits),  # type: ignore[arg-type]
        config=StrawberryConfig(scalar_map=SCALARS),
    )


def create_compiler(
    schema: strawberry.Schema, role: Role = Role.ALL, limits: Limits | None = None
) -> Compiler:
    """The compiled path of a schema (queries, and mutations' own payload fields),
    validating documents by the same rules."""
    limits = limits or Limits()
    rules = (*specified_rules, *validation_rules(role, limits))
    return Compiler(schema, rules, limits.max_tokens, mutations=MutationCompiler(schema))


schema = create_schema()
