"""``Query.service``: which build and role answered, for people in the playground."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from app import __version__
from app.graphql.context import Context


@strawberry.type(description="The process that answered this request.")
class ServiceInfo:
    name: str
    version: str
    role: str = strawberry.field(description="all, command or query (see `shop serve --role`).")


@strawberry.type
class ServiceQuery:
    @strawberry.field(description="Which build and role of the service answered.")
    def service(self, info: Info[Context, None]) -> ServiceInfo:
        return ServiceInfo(
            name="cqrs-shop", version=__version__, role=info.context.services.settings.role.value
        )
