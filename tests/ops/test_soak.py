"""The soak test's short version (scripts/soak.py): mixed load with every kind of fault,
then an audit that finds nothing wrong, and that does find damage planted in the stores."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from devtools.soak.chaos import FAULTS
from devtools.soak.run import Console, Options, Soak

# Four `shop` processes and their load: one after another with the other load tests.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("load")]

SHORT = Options(duration_s=20, clients=6, fault_interval_s=5, settle_timeout_s=90)


async def test_a_short_soak_with_every_fault_audits_clean_and_the_audit_catches_planted_damage(
    postgres_server_url: str,
) -> None:
    console = Console(say=print, status=lambda line: None)
    async with Soak.opened(postgres_server_url, SHORT, console) as soak:
        await soak.run()
        clean = await soak.audit()

        assert clean.discrepancies == ()
        assert all(soak.figures.faults[kind] >= 1 for kind in FAULTS), soak.figures.faults
        assert sum(soak.ledger.retried_after.values()) > 0, "no request met the API away"
        acknowledged = list(soak.ledger.with_outcome("acknowledged"))
        assert clean.mutations == len(acknowledged) > 100
        assert clean.events == len(acknowledged)  # one event each, and no other

        # A read-model row that no longer says what the log says.
        product = soak.ledger.products[0]
        async with soak.databases.read.begin() as connection:
            await connection.execute(
                text("UPDATE product_catalogue SET stock = stock + 7 WHERE id = :id"),
                {"id": product},
            )
        damaged = await soak.audit()
        assert {d.check for d in damaged.discrepancies} == {"read models", "stock"}
        (row,) = [d for d in damaged.discrepancies if d.check == "read models"]
        assert row.detail.startswith(f"product_catalogue {product}:")

        # An acknowledged mutation whose event is gone from the log.
        restock = next(m for m in acknowledged if m.name == "restockProduct")
        async with soak.databases.write.begin() as connection:
            await connection.execute(
                text("DELETE FROM outbox WHERE aggregate_id = :id AND aggregate_version = :v"),
                {"id": restock.aggregate_id, "v": restock.version},
            )
        lost = await soak.audit()
        (missing,) = [d.detail for d in lost.discrepancies if d.check == "event log"]
        assert restock.command_id in missing
        assert missing.endswith("no such event in the log")
        assert lost.events == clean.events - 1
