"""The command path alone: placeOrder (three lines) run by the executor in this process, one
command at a time, no HTTP, GraphQL or pipeline. Each round runs a block of orders the way
the service does (the first attempt without locks, its customer and products remembered by
the process: app/write/unit_of_work.py, app/write/remembered.py), a block reading them from
the store on each first attempt, and a block with every attempt locking (BEGIN, reads FOR
UPDATE, write, COMMIT), in turn, so all see the same machine. Reported per command: the
median latency, this process's CPU, and the CPU of the PostgreSQL backend that served it.

`python -m benchmarks.command_path --rounds 6 --orders 400` runs it alone."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from dataclasses import dataclass
from uuid import UUID

from benchmarks.harness import log, open_servers
from devtools.stores import StoreServers, fresh_stores


@dataclass(frozen=True)
class Round:
    p50_ms: float
    client_cpu_ms: float
    backend_cpu_ms: float
    locked_attempts: int  # attempts that ran with locks: every one locking, conflicts else


def _process_cpu_s(pid: int) -> float:
    """User and system CPU of a process on this machine (PostgreSQL's backend, here)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(servers: StoreServers, rounds: int, orders: int) -> dict[str, list[Round]]:
    from app.adapters import postgres
    from app.events.consistency_token import TokenKey
    from app.security.principal import Principal, UserRole
    from app.write import commands
    from app.write.authorization import command_rules
    from app.write.executor import CommandExecutor
    from app.write.handlers import HANDLERS
    from app.write.remembered import Remembered
    from app.write.unit_of_work import PostgresUnitOfWork

    admin = Principal(UserRole.ADMIN, "bench")
    async with fresh_stores(servers, "bench_commands") as stores:
        # One connection: every command is served by the same backend, whose CPU is read.
        pool = await postgres.create_pool(stores.write, pool_size=1, connect_timeout_s=10)
        locked: list[bool] = []

        def executor(always_lock: bool, memory: Remembered | None = None) -> CommandExecutor:
            def unit_of_work(*, locking: bool) -> PostgresUnitOfWork:
                locked.append(locking or always_lock)
                return PostgresUnitOfWork(pool, locking=locking or always_lock, memory=memory)

            return CommandExecutor(
                unit_of_work=unit_of_work,
                handlers=HANDLERS,
                policy=command_rules,
                token_key=TokenKey(os.urandom(32)),
            )

        try:
            seeding = executor(False)
            customers: list[UUID] = []
            for n in range(50):
                register = commands.RegisterCustomer(email=f"c{n}@example.com", name=f"C {n}")
                customers.append((await seeding.execute(register, admin)).aggregate_id)
            products: list[UUID] = []
            for n in range(300):
                create = commands.CreateProduct(
                    sku=f"SKU-{n}", name=f"P {n}", price_cents=100 + n, stock=10**9
                )
                products.append((await seeding.execute(create, admin)).aggregate_id)
            async with pool.acquire() as connection:
                backend = int(await connection.fetchval("SELECT pg_backend_pid()"))
            rng = random.Random(7)
            kinds = {
                "optimistic, remembering (the service)": (False, Remembered()),
                "optimistic, reading the store": (False, None),
                "locking": (True, None),
            }
            results: dict[str, list[Round]] = {name: [] for name in kinds}
            for number in range(1, rounds + 1):
                for name, (always_lock, memory) in kinds.items():
                    run_with = executor(always_lock, memory)
                    latencies = []
                    locked.clear()
                    cpu, backend_cpu = time.process_time(), _process_cpu_s(backend)
                    for _ in range(orders):
                        lines = tuple(
                            commands.OrderLine(product_id=p, quantity=1)
                            for p in rng.sample(products, 3)
                        )
                        order = commands.PlaceOrder(customer_id=rng.choice(customers), lines=lines)
                        started = time.perf_counter()
                        await run_with.execute(order, admin)
                        latencies.append(time.perf_counter() - started)
                    results[name].append(
                        Round(
                            statistics.median(latencies) * 1000,
                            (time.process_time() - cpu) / orders * 1000,
                            (_process_cpu_s(backend) - backend_cpu) / orders * 1000,
                            sum(locked),
                        )
                    )
                log(f"command path: round {number} of {rounds}")
            return results
        finally:
            await pool.close()


def report(results: dict[str, list[Round]], orders: int) -> str:
    lines = [
        f"{orders} placeOrder commands per block, medians of {len(next(iter(results.values())))}"
        " alternating rounds:",
        "",
        "| unit of work | p50 ms | client CPU ms | PostgreSQL backend CPU ms | attempts locked |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, rounds in results.items():

        def median(values: list[float]) -> float:
            return statistics.median(values)

        lines.append(
            f"| {name} | {median([r.p50_ms for r in rounds]):.2f} "
            f"| {median([r.client_cpu_ms for r in rounds]):.2f} "
            f"| {median([r.backend_cpu_ms for r in rounds]):.2f} "
            f"| {sum(r.locked_attempts for r in rounds):,} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.command_path", description=__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--orders", type=int, default=400, help="orders per block")
    args = parser.parse_args()

    async def measure() -> dict[str, list[Round]]:
        with open_servers() as servers:
            return await run(servers, args.rounds, args.orders)

    print(report(asyncio.run(measure()), args.orders))


if __name__ == "__main__":
    main()
