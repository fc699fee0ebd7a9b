"""Operator commands: projection status and rebuilds, dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from app.adapters.migrations import History
from app.cli.common import BOTH_STORES, READ_STORE, fail, guarded, run_prepared, settings_or_exit
from app.cli.stores import resolved_stores
from app.config.settings import Settings
from app.pipeline import dead_letters
from app.pipeline.rebuild import RebuildFailed, rebuild
from app.pipeline.status import projection_statuses
from app.projections.registry import PROJECTIONS
from app.runtime.bootstrap import read_engine, redis_client, write_engine

T = TypeVar("T")
out = Console()

projections_cli = typer.Typer(help="Inspect and rebuild projections.", no_args_is_help=True)
dlq_cli = typer.Typer(help="Events parked after repeated failures.", no_args_is_help=True)


def run_operation(
    work: Callable[[Settings], Coroutine[Any, Any, T]],
    *,
    uses: frozenset[History],
    redis: bool,
) -> T:
    """Resolve the stores (embedded if not configured; Redis only if `redis`), check the
    schema of those it `uses`, then run `work`, which opens them."""
    settings = settings_or_exit()
    result: list[T] = []

    def run() -> None:
        with resolved_stores(settings, redis=redis) as (resolved, embedded):
            run_prepared(resolved, embedded, migrate=False, uses=uses)
            result.append(asyncio.run(work(resolved)))

    guarded(run)
    return result[0]


@projections_cli.command("status")
def status() -> None:
    """Name, state, lag (events and seconds), events applied and parked, per projection."""

    async def work(s: Settings) -> None:
        async with read_engine(s) as read, redis_client(s) as redis:
            rows = await projection_statuses(
                read, redis, s.redis_prefix, s.stream_partitions, PROJECTIONS
            )
        table = Table(
            "projection", "state", "lag events", "lag s", "applied", "parked", "last applied"
        )
        for row in rows:
            last = row.last_applied_at.isoformat(timespec="seconds") if row.last_applied_at else ""
            table.add_row(row.name, row.state, str(row.lag_events), f"{row.lag_seconds:.1f}",
                          str(row.events_applied), str(row.dead_letters), last)  # fmt: skip
        out.print(table)

    run_operation(work, uses=READ_STORE, redis=True)


@projections_cli.command("rebuild")
def rebuild_command(
    names: Annotated[
        list[str] | None, typer.Argument(help="The projections to rebuild.", show_default=False)
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Rebuild every projection.")] = False,
) -> None:
    """Replay the event log into shadow tables while the live ones serve, then swap them in.

    Several projections rebuild in one pass over the log."""
    known = {str(p.name): p for p in PROJECTIONS}
    if all_ == bool(names):
        fail("name the projections to rebuild, or give --all (not both)", 2)
    unknown = [name for name in names or () if name not in known]
    if unknown:
        fail(f"no projection {', '.join(map(repr, unknown))}; there are: {', '.join(known)}", 2)
    chosen = list(PROJECTIONS) if all_ else [known[name] for name in dict.fromkeys(names or ())]
    label = ", ".join(p.name for p in chosen)

    async def work(settings: Settings) -> None:
        columns = (
            TextColumn(f"rebuilding {label}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} events/s"),
            TimeRemainingColumn(),
        )  # fmt: skip
        with Progress(*columns, console=Console(stderr=True)) as bar:
            task = bar.add_task("replay", total=None, rate="-")

            def progress(done: int, total: int) -> None:
                elapsed = bar.tasks[task].elapsed or 0
                rate = f"{done / elapsed:,.0f}" if elapsed > 0 else "-"
                bar.update(task, completed=done, total=total, rate=rate)

            try:
                async with read_engine(settings) as read, write_engine(settings) as write:
                    reports = await rebuild(chosen, read, write, progress)
            except RebuildFailed as error:
                bar.stop()
                fail(f"rebuild stopped: {error}\nThe live read models are unchanged; fix the "
                     "cause and rebuild again.")  # fmt: skip
        for report in reports:
            out.print(
                f"rebuilt {report.projection}: {report.replayed} events replayed, "
                f"{report.caught_up} caught up at the swap, in {report.seconds:.1f} s"
            )

    run_operation(work, uses=BOTH_STORES, redis=False)


@dlq_cli.command("list")
def dlq_list(
    projection: Annotated[str | None, typer.Option(help="Only this projection.")] = None,
) -> None:
    """Parked events with their error."""

    async def work(settings: Settings) -> None:
        async with read_engine(settings) as read:
            letters = await dead_letters.list_dead_letters(read, projection)
        table = Table("id", "projection", "aggregate", "version", "event", "attempts", "error")
        for d in letters:
            table.add_row(str(d.id), d.projection, str(d.aggregate_id), str(d.aggregate_version),
                          d.event_type, str(d.attempts), d.error[:120])  # fmt: skip
        out.print(table if letters else "no parked events")

    run_operation(work, uses=READ_STORE, redis=False)


@dlq_cli.command("retry")
def dlq_retry(
    ids: Annotated[list[int] | None, typer.Argument(help="Dead letter ids (default: all).")] = None,
) -> None:
    """Apply parked events again, each aggregate's in version order."""

    async def work(settings: Settings) -> int:
        async with read_engine(settings) as read:
            outcomes = await dead_letters.retry(read, PROJECTIONS, ids or ())
        for o in outcomes:
            verdict = f"applied {o.applied}" if o.error is None else f"still failing: {o.error}"
            out.print(f"{o.projection} {o.aggregate_id}: {verdict}")
        if not outcomes:
            out.print("no parked events")
        return sum(1 for o in outcomes if o.error is not None)

    if run_operation(work, uses=READ_STORE, redis=False):
        raise typer.Exit(1)


@dlq_cli.command("discard")
def dlq_discard(ids: Annotated[list[int], typer.Argument(help="Dead letter ids.")]) -> None:
    """Drop parked events for good (their aggregates flow again once none is left)."""

    async def work(settings: Settings) -> int:
        async with read_engine(settings) as read:
            return await dead_letters.discard(read, PROJECTIONS, ids)

    out.print(f"discarded {run_operation(work, uses=READ_STORE, redis=False)} dead letter(s)")
