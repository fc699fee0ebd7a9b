"""Soak test: mixed load for a set time with chaos, then a full audit.

Clients place, pay, ship and cancel orders, restock products, change prices, register
customers and query, over HTTP, each mutation with a commandId (retried with the same one
when the API is away). Meanwhile workers are killed with SIGKILL and restarted, the soak's
own Redis is killed and restarted, and an API process is killed mid-requests and restarted.
Then, once the projections have caught up, the audit checks that the read models equal a
rebuild from the event log, that every acknowledged mutation is in the log exactly once,
and that each product's stock is initial + restocks - reserved + released, never negative.

The soak runs in fresh databases on the PostgreSQL server named by --postgres-url, else by
SHOP_DATABASE_URL, else on an embedded PostgreSQL, and dropped at the end (unless --keep);
its Redis is its own. Exit status: 0 when the audit finds no discrepancy, 1 when it finds
some, 2 when the soak could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

if __package__ in (None, ""):  # run as `python scripts/soak.py`: import from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools.processes import StartError
from devtools.soak.audit import Audit
from devtools.soak.load import SoakError
from devtools.soak.run import Console, Options, Soak
from devtools.stores import postgres_server

SHOWN_DISCREPANCIES = 25


def parse(argv: list[str] | None) -> tuple[Options, str | None]:
    parser = argparse.ArgumentParser(
        prog="python scripts/soak.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--duration", type=float, required=True, metavar="SECONDS", help="how long the load runs")
    add("--clients", type=int, default=8, help="concurrent clients (default 8)")
    add("--workers", type=int, default=2, help="`shop worker` processes (default 2)")
    add(
        "--fault-interval", type=float, default=20.0, metavar="SECONDS",
        help="seconds between faults, in turn: worker killed, Redis restarted, API killed "
        "(default 20; at most a quarter of the duration; the load goes on until each "
        "kind has happened once)",
    )  # fmt: skip
    add("--customers", type=int, default=20, help="customers registered first (default 20)")
    add("--products", type=int, default=12, help="products created first (default 12)")
    add("--stock", type=int, default=300, help="initial stock of each product (default 300)")
    add("--seed", type=int, default=0, help="seed of the clients' choices (default 0)")
    add(
        "--settle-timeout", type=float, default=300.0, metavar="SECONDS",
        help="how long projections may take to catch up after the load (default 300)",
    )  # fmt: skip
    add(
        "--postgres-url", default=os.environ.get("SHOP_DATABASE_URL"),
        help="PostgreSQL server for the soak's own databases (default: SHOP_DATABASE_URL's "
        "server; without it, an embedded PostgreSQL)",
    )  # fmt: skip
    add("--keep", action="store_true", help="keep the databases and the processes' logs")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.clients < 1 or args.workers < 1 or args.products < 1:
        parser.error("--duration, --clients, --workers and --products must be positive")
    options = Options(
        duration_s=args.duration,
        clients=args.clients,
        workers=args.workers,
        fault_interval_s=args.fault_interval,
        customers=max(1, args.customers),
        products=args.products,
        stock=args.stock,
        seed=args.seed,
        settle_timeout_s=args.settle_timeout,
        keep=args.keep,
    )
    return options, args.postgres_url


def terminal_console(stream: TextIO) -> Console:
    """Lines with the time since start; on a terminal the progress line is redrawn in place,
    elsewhere (a log file, CI) it is printed every 15 s."""
    started = time.monotonic()
    live = stream.isatty()
    last_status = [0.0]

    def say(line: str) -> None:
        clear = "\r\x1b[K" if live else ""
        stream.write(f"{clear}[{time.monotonic() - started:6.0f} s] {line}\n")
        stream.flush()

    def status(line: str) -> None:
        if live:
            width = shutil.get_terminal_size().columns - 1
            stream.write(f"\r{line[:width]}\x1b[K")
            stream.flush()
        elif time.monotonic() - last_status[0] >= 15:
            last_status[0] = time.monotonic()
            say(line)

    return Console(say, status)


def summary(soak: Soak, audit: Audit, versions: str, command: str, wall_s: float) -> str:
    """The figures of a soak, for a person and for docs/deploy.md."""
    ledger, figures = soak.ledger, soak.figures
    outcomes = ledger.outcomes()
    acknowledged = ", ".join(f"{n} {c:,}" for n, c in ledger.acknowledged_by_name().most_common())
    refused = ", ".join(f"{code} {c:,}" for code, c in ledger.rejections.most_common()) or "none"
    retried = ", ".join(f"{why} {c:,}" for why, c in ledger.retried_after.most_common()) or "none"
    faults = ", ".join(f"{kind} {count}" for kind, count in figures.faults.items())
    failed = ", ".join(f"{why} {c:,}" for why, c in ledger.query_failures.most_common())
    lines = [
        "",
        f"Soak test: {command}",
        f"  when           {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {versions}",
        f"  databases      {', '.join(soak.databases.names)}"
        + (" (kept)" if soak.options.keep else " (dropped)"),
        f"  duration       {figures.load_s:.0f} s of load (asked: {soak.options.duration_s:.0f} s)"
        f", {figures.settle_s:.1f} s to catch up, {wall_s:.0f} s in all",
        f"  mutations      {outcomes['acknowledged']:,} acknowledged ({acknowledged})",
        f"                 {outcomes['rejected']:,} refused by the rules ({refused}), "
        f"{outcomes['unanswered']:,} unanswered",
        f"                 {sum(ledger.retried_after.values()):,} retries with the same "
        f"commandId ({retried})",
        f"  queries        {ledger.queries['answered']:,} answered, "
        f"{ledger.queries['failed']:,} failed ({failed or 'none'})",
        f"  events         {audit.events:,} in the log; {audit.read_model_rows:,} read-model "
        f"rows compared with a rebuild; {audit.products} products' stock checked",
        f"  faults         {faults}",
    ]
    if ledger.negative_stock_reads:
        lines.append(
            f"  observed       {sum(ledger.negative_stock_reads.values()):,} reads showed a "
            f"product's stock below zero mid-run ({len(ledger.negative_stock_reads)} products, "
            f"lowest {ledger.lowest_stock_read}): the catalogue adds up events of several "
            "partitions, and counted orders before restocks or cancellations still on a "
            "lagging one"
        )
    if figures.exited_on_their_own:
        lines.append(f"  exited         {', '.join(figures.exited_on_their_own)}")
    lines.append(f"  discrepancies  {len(audit.discrepancies)}")
    lines.extend(f"    {d}" for d in audit.discrepancies[:SHOWN_DISCREPANCIES])
    if len(audit.discrepancies) > SHOWN_DISCREPANCIES:
        lines.append(f"    ... and {len(audit.discrepancies) - SHOWN_DISCREPANCIES} more")
    if soak.options.keep:
        lines.append(f"  logs           {soak.folder}")
    return "\n".join(lines)


async def soak(
    options: Options, postgres_url: str | None, console: Console, command: str
) -> tuple[int, str]:
    started = time.monotonic()
    # SIGTERM (a timeout, a CI job stopped) cleans up as Ctrl-C does: processes, databases.
    this = asyncio.current_task()
    assert this is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, this.cancel)
    with postgres_server(postgres_url) as server_url:
        async with Soak.opened(server_url, options, console) as run:
            await run.run()
            found = await run.audit()
            versions = await run.versions()
            report = summary(run, found, versions, command, time.monotonic() - started)
    return (0 if not found.discrepancies else 1), report


def main(argv: list[str] | None = None) -> int:
    options, postgres_url = parse(argv)
    command = shlex.join(["python", "scripts/soak.py", *(sys.argv[1:] if argv is None else argv)])
    console = terminal_console(sys.stderr)
    try:
        status, report = asyncio.run(soak(options, postgres_url, console, command))
    except (SoakError, StartError) as error:
        console.say(f"the soak could not run: {error}")
        return 2
    except (KeyboardInterrupt, asyncio.CancelledError):
        console.say("stopped before the end; cleaned up")
        return 2
    print(report, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
