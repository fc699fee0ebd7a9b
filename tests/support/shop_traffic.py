"""Random but valid-looking shop traffic over GraphQL, for pipeline and crash tests."""

from __future__ import annotations

import asyncio
import random

from devtools.graphql_client import (
    CANCEL_ORDER,
    CHANGE_PRODUCT_PRICE,
    PAY_ORDER,
    PLACE_ORDER,
    RESTOCK_PRODUCT,
    SHIP_ORDER,
    GraphQLClient,
)


class Traffic:
    """Customers, products and orders, and commands over them chosen at random."""

    def __init__(self, gql: GraphQLClient, seed: int) -> None:
        self.gql = gql
        self.rng = random.Random(seed)
        self.customers: list[str] = []
        self.products: list[str] = []
        self.orders: list[str] = []

    async def set_up(self, customers: int = 8, products: int = 8) -> None:
        for i in range(customers):
            self.customers.append(await self.gql.customer(f"c{i}@example.com", f"Customer {i}"))
        for i in range(products):
            self.products.append(
                await self.gql.product(f"SKU-{i}", f"Product {i}", 100 + i, 1_000_000)
            )

    async def one(self) -> None:
        """One command; it may be refused (an order already shipped, say): that is fine."""
        roll = self.rng.random()
        if roll < 0.45 or not self.orders:
            lines = [
                {"productId": p, "quantity": self.rng.randint(1, 3)}
                for p in self.rng.sample(
                    self.products, self.rng.randint(1, min(3, len(self.products)))
                )
            ]
            payload = await self.gql.mutate(
                PLACE_ORDER, customerId=self.rng.choice(self.customers), lines=lines
            )
            if payload["orderId"]:
                self.orders.append(payload["orderId"])
        elif roll < 0.85:
            document = self.rng.choice([PAY_ORDER, SHIP_ORDER, CANCEL_ORDER])
            await self.gql.mutate(document, orderId=self.rng.choice(self.orders))
        elif roll < 0.93:
            await self.gql.mutate(
                RESTOCK_PRODUCT, productId=self.rng.choice(self.products), quantity=5
            )
        else:
            await self.gql.mutate(
                CHANGE_PRODUCT_PRICE,
                productId=self.rng.choice(self.products),
                priceCents=self.rng.randint(50, 500),
            )

    async def run(self, commands: int, concurrency: int = 8) -> None:
        for _ in range(commands // concurrency):
            await asyncio.gather(*(self.one() for _ in range(concurrency)))
