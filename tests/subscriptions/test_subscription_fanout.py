"""One order update fanned out to a thousand subscribers at once, on both protocols."""

from __future__ import annotations

import asyncio
import logging

import psutil
import pytest

from devtools.graphql_client import PAY_ORDER, GraphQLClient
from devtools.servers import ServerUnderTest
from devtools.ws_client import PROTOCOLS, subscriber
from tests.subscriptions.test_broadcast import broadcasts_of

# Heavy load: run one after another with the other load tests (see pyproject addopts).
# A thousand WebSocket handshakes share two cores with the other tests: allow for it.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("load"), pytest.mark.timeout(300)]
SUBSCRIBERS = 1000
log = logging.getLogger("tests.fanout")


async def test_1000_subscribers_to_one_order_all_receive_its_update(
    server: ServerUnderTest, gql: GraphQLClient, record_property: object
) -> None:
    customer = await gql.customer()
    product = await gql.product()
    order = await gql.order(customer, (product, 1))
    query = f'subscription {{ orderUpdated(id: "{order["orderId"]}") {{ status version }} }}'
    subscribed = 0
    all_subscribed = asyncio.Event()
    rss_before = psutil.Process().memory_info().rss

    async def one(protocol: str) -> tuple[str, str]:
        nonlocal subscribed
        async with subscriber(server.ws_url, protocol) as ws:
            await ws.subscribe(query)
            first = (await ws.data(timeout_s=120))["orderUpdated"]["status"]
            subscribed += 1
            if subscribed == SUBSCRIBERS:
                all_subscribed.set()
            update = (await ws.data(timeout_s=120))["orderUpdated"]["status"]
            return first, update

    clients = [asyncio.create_task(one(PROTOCOLS[i % 2])) for i in range(SUBSCRIBERS)]
    await asyncio.wait_for(all_subscribed.wait(), 180)
    assert len(broadcasts_of(server).groups) == 1  # one read, execution and encoding for all
    rss_held = psutil.Process().memory_info().rss
    await gql.ok(PAY_ORDER, orderId=order["orderId"])
    results = await asyncio.gather(*clients)
    assert results == [("PLACED", "PAID")] * SUBSCRIBERS
    grown_mb = (rss_held - rss_before) / 2**20
    # Server and clients share this process: the figure bounds what the server holds.
    record_property("rss_growth_mb_for_1000_subscribers", round(grown_mb, 1))  # type: ignore[operator]
    log.warning("1000 subscribers: process memory grew by %.1f MiB", grown_mb)
