"""Relay-style connections: edges with opaque cursors, pageInfo, and a totalCount.

`totalCount` counts every row the filter matches, whatever the cursor; it costs a query of
its own, so it runs only when a client selects it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import strawberry
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from app.queries.pagination import Listing, Page, count_rows, fetch_page

Node = TypeVar("Node")


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[Node]):
    cursor: str
    node: Node


@strawberry.type
class Connection(Generic[Node]):
    edges: list[Edge[Node]]
    page_info: PageInfo
    counter: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many match the filter, wherever the cursor stands.")
    async def total_count(self) -> int:
        return await self.counter()


def connection(
    page: Page, node: Callable[[RowMapping], Node], counter: Callable[[], Awaitable[int]]
) -> Connection[Node]:
    """The connection showing one page; `counter` counts the whole list when asked."""
    edges = [
        Edge(cursor=cursor, node=node(row))
        for row, cursor in zip(page.rows, page.cursors, strict=True)
    ]
    end = page.cursors[-1] if page.cursors else None
    info = PageInfo(has_next_page=page.has_next, end_cursor=end)
    return Connection(edges=edges, page_info=info, counter=counter)


async def paged(
    engine: AsyncEngine,
    listing: Listing,
    first: int | None,
    after: str | None,
    node: Callable[[RowMapping], Node],
) -> Connection[Node]:
    """One page of a listing as a connection."""
    page = await fetch_page(engine, listing, first, after)
    return connection(page, node, lambda: count_rows(engine, listing))
