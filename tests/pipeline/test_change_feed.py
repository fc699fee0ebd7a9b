"""The change feed on a real Redis: announcements ring the watches of their keys."""

from __future__ import annotations

import asyncio
import json
from uuid import uuid4

from app.projections.change_keys import order_key
from app.projections.names import ProjectionName
from app.runtime.bootstrap import Api


async def test_an_announcement_rings_its_keys_and_passes_over_kinds_this_code_does_not_know(
    process: Api,
) -> None:
    feed = process.services.changes
    await asyncio.wait_for(feed.connected.wait(), 10)
    order = order_key(uuid4())
    async with feed.watch([ProjectionName.ORDER_VIEW], [order]) as watch:
        # As a newer projector might send: a kind of key this code has never heard of.
        body = {"projection": "order_view", "keys": ["invoice:7", str(order)]}
        await process.stores.redis.publish(feed.channel, json.dumps(body))
        assert await watch.wait(10), "the watch of the order's key was not rung"
        assert watch.take() == ({order}, False)
