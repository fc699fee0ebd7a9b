"""The soak's clients: mutations over HTTP, each with a commandId and retried with that same
commandId until the service answers, queries in between, and the ledger of every answer."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from devtools.graphql_client import ID_FIELDS, MUTATIONS

# What a client does next, and how often (weights); "query" is one read-model query.
MIX = {
    "placeOrder": 30,
    "payOrder": 14,
    "shipOrder": 9,
    "cancelOrder": 8,
    "restockProduct": 6,
    "changeProductPrice": 5,
    "registerCustomer": 3,
    "query": 25,
}

QUERIES = {
    "product": "query($id: ID!) { product(id: $id) { id stock priceCents unitsSold } }",
    "order": "query($id: ID!) { order(id: $id) { id status version totalCents } }",
    "customer": "query($id: ID!) { customer(id: $id) { id orderCount totalSpentCents } }",
    "products": "query { products(first: 20, orderBy: UNITS_SOLD_DESC) "
    "{ edges { node { id stock } } } }",
    "orders": "query { orders(first: 20) { edges { node { id status totalCents } } } }",
    "salesReport": "query($day: Date!) { salesReport(from: $day, to: $day) { revenueCents } }",
}
# Pay, ship and cancel pick among the latest orders, so orders really move along.
_RECENT_ORDERS = 200


@dataclass
class Mutation:
    """One mutation as the client sent it, and the answer it finally got."""

    command_id: str
    name: str
    input: dict[str, Any]
    outcome: str = "unanswered"  # until "acknowledged" or "rejected"
    payload: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0

    @property
    def aggregate_id(self) -> str:
        return str(self.payload[ID_FIELDS[self.name]])

    @property
    def version(self) -> int:
        return int(self.payload["version"])


@dataclass
class Ledger:
    """Everything the clients sent and were told, by commandId."""

    mutations: dict[str, Mutation] = field(default_factory=dict)
    customers: list[str] = field(default_factory=list)
    products: list[str] = field(default_factory=list)
    orders: list[str] = field(default_factory=list)
    rejections: Counter[str] = field(default_factory=Counter)
    retried_after: Counter[str] = field(default_factory=Counter)  # what made a client retry
    queries: Counter[str] = field(default_factory=Counter)  # "answered", "failed"
    query_failures: Counter[str] = field(default_factory=Counter)
    # Reads of a product's stock below zero, by product: lowest value seen, and how often.
    # Not a discrepancy: the catalogue adds up order events and product events that travel
    # on different partitions, so while one partition lags (a worker just killed, say) it
    # can count an order before the restock or cancellation that made its stock available.
    # The audit checks the stock once the projections have caught up.
    negative_stock_reads: Counter[str] = field(default_factory=Counter)
    lowest_stock_read: int = 0

    def open(self, name: str, input: dict[str, Any]) -> Mutation:
        command_id = f"soak-{uuid.uuid4().hex}"
        mutation = Mutation(command_id, name, {**input, "commandId": command_id})
        self.mutations[command_id] = mutation
        return mutation

    def answer(self, mutation: Mutation, payload: dict[str, Any]) -> None:
        mutation.payload = payload
        if payload["userErrors"]:
            mutation.outcome = "rejected"
            self.rejections[payload["userErrors"][0]["code"]] += 1
            return
        mutation.outcome = "acknowledged"
        created = {
            "registerCustomer": self.customers,
            "createProduct": self.products,
            "placeOrder": self.orders,
        }.get(mutation.name)
        if created is not None:
            created.append(mutation.aggregate_id)

    def with_outcome(self, outcome: str) -> Iterator[Mutation]:
        return (m for m in self.mutations.values() if m.outcome == outcome)

    def outcomes(self) -> Counter[str]:
        return Counter(m.outcome for m in self.mutations.values())

    def acknowledged_by_name(self) -> Counter[str]:
        return Counter(m.name for m in self.with_outcome("acknowledged"))


@dataclass(frozen=True)
class Endpoints:
    """Where mutations and queries go (a command API and a query API)."""

    command: str
    query: str


class Shopper:
    """One client: picks what to do at random and does it over HTTP."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        endpoints: Endpoints,
        ledger: Ledger,
        rng: random.Random,
        answer_within_s: float,
    ) -> None:
        self.http = http
        self.endpoints = endpoints
        self.ledger = ledger
        self.rng = rng
        self.answer_within_s = answer_within_s

    async def seed(self, customers: int, products: int, stock: int) -> None:
        """The shop the load starts from."""
        for n in range(customers):
            await self.register_customer(n)
        for n in range(products):
            input = {"sku": f"SOAK-{n}", "name": f"Soak product {n}", "priceCents": 250 + n}
            await self.mutate("createProduct", **input, stock=stock)

    async def keep_going(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.one()

    async def one(self) -> None:
        """One mutation or query, chosen by MIX; refusals (no stock, already shipped) are fine."""
        (what,) = self.rng.choices(list(MIX), weights=list(MIX.values()))
        rng, ledger = self.rng, self.ledger
        if what == "query":
            await self.query()
        elif what == "registerCustomer":
            await self.register_customer(len(ledger.mutations))
        elif what == "placeOrder" or not ledger.orders:
            products = rng.sample(ledger.products, rng.randint(1, min(3, len(ledger.products))))
            lines = [{"productId": p, "quantity": rng.randint(1, 3)} for p in products]
            await self.mutate("placeOrder", customerId=rng.choice(ledger.customers), lines=lines)
        elif what in ("payOrder", "shipOrder", "cancelOrder"):
            await self.mutate(what, orderId=rng.choice(ledger.orders[-_RECENT_ORDERS:]))
        elif what == "restockProduct":
            product = rng.choice(ledger.products)
            await self.mutate(what, productId=product, quantity=rng.randint(1, 30))
        else:
            product = rng.choice(ledger.products)
            await self.mutate(what, productId=product, priceCents=rng.randint(100, 5000))

    async def register_customer(self, n: int) -> None:
        email = f"soak-{n}-{uuid.uuid4().hex[:6]}@example.com"
        await self.mutate("registerCustomer", email=email, name=f"Soak customer {n}")

    async def mutate(self, name: str, /, **input: Any) -> Mutation:
        """Send until answered (accepted or refused), always with the same commandId."""
        mutation = self.ledger.open(name, input)
        deadline = time.monotonic() + self.answer_within_s
        delay = 0.05
        while True:
            mutation.attempts += 1
            variables = {"input": mutation.input}
            body = await self._post(self.endpoints.command, MUTATIONS[name], variables)
            payload = body.get("data", {}) if "errors" not in body else {}
            if payload.get(name) is not None:
                self.ledger.answer(mutation, payload[name])
                return mutation
            if time.monotonic() > deadline:
                return mutation  # stays "unanswered": the audit reports it
            self.ledger.retried_after[_retryable(body)] += 1
            await asyncio.sleep(delay)
            delay = min(2 * delay, 1.0)

    async def query(self) -> None:
        name = self.rng.choice(list(QUERIES))
        ids = {
            "product": self.ledger.products,
            "customer": self.ledger.customers,
            "order": self.ledger.orders,
        }
        if not ids.get(name, True):
            name = "products"  # no order placed yet
        variables: dict[str, Any] = {}
        if name in ids:
            variables["id"] = self.rng.choice(ids[name])
        elif name == "salesReport":
            variables["day"] = datetime.now(UTC).date().isoformat()
        body = await self._post(self.endpoints.query, QUERIES[name], variables)
        if "data" in body and "errors" not in body:
            self.ledger.queries["answered"] += 1
            for product, stock in _negative_stock(body["data"]):
                self.ledger.negative_stock_reads[product] += 1
                self.ledger.lowest_stock_read = min(self.ledger.lowest_stock_read, stock)
        else:
            self.ledger.queries["failed"] += 1
            self.ledger.query_failures[_why(body)] += 1

    async def _post(self, url: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """The response body; {"failure": why} when there is none to read."""
        try:
            response = await self.http.post(url, json={"query": query, "variables": variables})
        except httpx.HTTPError as error:  # refused, reset, timed out: the API is away
            return {"failure": type(error).__name__}
        if response.status_code != 200:
            return {"failure": f"HTTP {response.status_code}"}
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            return {"failure": "not JSON"}
        return body


class SoakError(RuntimeError):
    """The soak cannot go on; the message says why."""


# Errors that say the service is away or in trouble for now: retried with the same commandId.
_TRANSIENT_CODES = ("UNAVAILABLE", "INTERNAL")


def _why(body: dict[str, Any]) -> str:
    """Why a request got no answer: the transport's error, or the GraphQL error's code."""
    if "failure" in body:
        return str(body["failure"])
    errors = body.get("errors") or [{}]
    return str(errors[0].get("extensions", {}).get("code", errors[0].get("message")))


def _retryable(body: dict[str, Any]) -> str:
    """Why a mutation got no payload, if a retry may get one; else SoakError (the API
    refused what the soak sent for a reason no retry changes: a bug of the soak's)."""
    why = _why(body)
    if "failure" not in body and why not in _TRANSIENT_CODES:
        raise SoakError(f"the API refused a request of the soak: {body.get('errors', body)}")
    return why


def _negative_stock(data: Any) -> Iterator[tuple[str, int]]:
    """(product id, stock) for every product a query result shows with stock below zero."""
    if isinstance(data, dict):
        if isinstance(data.get("stock"), int) and data["stock"] < 0:
            yield str(data.get("id")), data["stock"]
        for value in data.values():
            yield from _negative_stock(value)
    elif isinstance(data, list):
        for value in data:
            yield from _negative_stock(value)
