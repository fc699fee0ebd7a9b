"""`shop serve` runs the relay and projectors as a child process: restarted when it dies,
stopped with serve, gone when serve is killed."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from app.runtime.bootstrap import Stores
from devtools.graphql_client import GraphQLClient
from devtools.ports import free_port
from devtools.processes import ShopProcesses
from devtools.servers import Address, until_answering
from tests.support.pipeline_waits import until_projected

pytestmark = pytest.mark.slow

REGISTER = (
    "mutation($input: RegisterCustomerInput!) { registerCustomer(input: $input) "
    "{ customerId userErrors { code } } }"
)


@pytest.fixture
def shop(shop_env: dict[str, str], tmp_path: Path) -> Iterator[ShopProcesses]:
    # A killed child's partitions are taken over once its leases lapse: keep that short.
    env = {**shop_env, "SHOP_LOG_LEVEL": "warning", "SHOP_LEASE_TTL_S": "3"}
    running = ShopProcesses(env, tmp_path)
    try:
        yield running
    finally:
        running.stop()


def pipeline_children(pid: int) -> list[psutil.Process]:
    """The `shop worker` children of a serve process."""
    found = []
    for child in psutil.Process(pid).children():
        try:
            if child.cmdline()[-3:] == ["-m", "app", "worker"]:
                found.append(child)
        except psutil.NoSuchProcess:  # ended between the listing and the look
            continue
    return found


async def one_child(pid: int, other_than: int | None = None, timeout_s: float = 20) -> int:
    for _ in range(int(timeout_s / 0.1)):
        found = [c.pid for c in pipeline_children(pid) if c.pid != other_than]
        if found:
            assert len(pipeline_children(pid)) == 1
            return found[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"serve (pid {pid}) has no pipeline child after {timeout_s} s")


async def gone(pid: int, timeout_s: float = 30) -> bool:
    for _ in range(int(timeout_s / 0.1)):
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        await asyncio.sleep(0.1)
    return False


async def register_and_project(
    port: int, stores: Stores, email: str, timeout_s: float = 30
) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        gql = GraphQLClient(f"http://127.0.0.1:{port}/graphql", client)
        body = await gql.execute(REGISTER, {"input": {"email": email, "name": "Child"}})
    assert body["data"]["registerCustomer"]["userErrors"] == [], body
    await until_projected(stores, timeout_s=timeout_s)


async def test_serve_projects_through_a_child_it_restarts_and_stops(
    shop: ShopProcesses, stores: Stores, tmp_path: Path
) -> None:
    port = free_port()
    serve = shop.start("serve", "serve", "--port", str(port))
    await until_answering(serve, Address.loopback(port))
    child = await one_child(serve.pid)
    await register_and_project(port, stores, "first@example.com")

    psutil.Process(child).kill()  # the pipeline dies; the API goes on, and starts it again
    replacement = await one_child(serve.pid, other_than=child, timeout_s=30)
    await register_and_project(port, stores, "second@example.com", timeout_s=90)
    assert "exited with -9; starting it again" in shop.log_path("serve").read_text()

    serve.send_signal(signal.SIGTERM)
    assert serve.wait(40) == 0
    assert await gone(replacement)


async def test_a_killed_serve_takes_its_pipeline_child_with_it(
    shop: ShopProcesses, stores: Stores
) -> None:
    port = free_port()
    serve = shop.start("serve", "serve", "--port", str(port))
    await until_answering(serve, Address.loopback(port))
    child = await one_child(serve.pid)
    shop.kill("serve")
    assert await gone(child)


async def test_with_pipeline_process_off_serve_has_no_child_and_still_projects(
    shop_env: dict[str, str], stores: Stores, tmp_path: Path
) -> None:
    inline = ShopProcesses({**shop_env, "SHOP_PIPELINE_PROCESS": "false"}, tmp_path)
    try:
        port = free_port()
        serve = inline.start("serve", "serve", "--port", str(port))
        await until_answering(serve, Address.loopback(port))
        await register_and_project(port, stores, "inline@example.com")
        assert pipeline_children(serve.pid) == []
    finally:
        inline.stop()
