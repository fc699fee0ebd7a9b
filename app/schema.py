"""Builds the GraphQL schema: the one place the feature types are merged."""

from __future__ import annotations

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig

from app.error_masking import MaskUnexpectedErrors
from app.mutations.resolvers import Mutation
from app.queries.resolvers import ReadModelQuery
from app.queries.service import ServiceQuery
from app.role_rules import RULES_BY_ROLE
from app.scalars import SCALARS
from app.settings import Role
from app.subscriptions.resolvers import Subscription


@strawberry.type
class Query(ReadModelQuery, ServiceQuery):
    """Every read the API offers."""


def _extensions(role: Role) -> list[type[SchemaExtension] | object]:
    rules = list(RULES_BY_ROLE[role])
    return [
        ParserCache,
        ValidationCache,
        # Factories, not instances: strawberry makes one per request. The rule classes are
        # import-time constants, so the validation cache still hits.
        lambda: AddValidationRules(rules),
        MaskUnexpectedErrors,
    ]


def create_schema(role: Role = Role.ALL) -> strawberry.Schema:
    """The schema one process serves; the role only adds validation rules."""
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=_extensions(role),  # type: ignore[arg-type]
        config=StrawberryConfig(scalar_map=SCALARS),
    )


schema = create_schema()
