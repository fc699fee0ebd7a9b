"""The Markdown report: machine, command, one table per part, and the targets."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

NOTES = Path(__file__).parent / "NOTES.md"
CONNECTIONS = 16  # of the query loads (benchmarks/queries.py)


def _n(value: float, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def _rate(result: Any, seconds: float) -> tuple[float, str]:
    """A load's rate, and how to print it. A run in which no request finished tells only an
    upper bound: fewer than (connections / seconds) requests per second."""
    if result.requests:
        return result.requests_per_s, _n(result.requests_per_s)
    bound = CONNECTIONS / seconds
    return bound, f"< {bound:.1f} (none finished in {seconds:.0f} s)"


def _ratio(cqrs: Any, crud: Any, seconds: float) -> tuple[float, str]:
    rate, _ = _rate(crud, seconds)
    ratio = cqrs.requests_per_s / rate if rate else 0.0
    return ratio, (f"{ratio:,.1f}x" if crud.requests else f"> {ratio:,.0f}x")


def _target(met: bool, text: str) -> str:
    return f"| {'met' if met else '**missed**'} | {text} |"


def render(results: dict[str, Any], command: str) -> str:
    size = results["size"]
    parts = results["parts"]
    out = [
        "# Benchmarks",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `{command}` "
        f"(size `{size.name}`, {results['seconds'] / 60:.1f} minutes). Regenerate with the same "
        "command; `--size small` is the quick check CI runs.",
        "",
        "## Machine",
        "",
        *(f"- {key}: {value}" for key, value in results["machine"].items()),
        f"- stores: {results['servers']['where']} (PostgreSQL {results['servers']['postgres']}, "
        f"Redis {results['servers']['redis']})",
        "- Load generators (wrk, pgbench, the Python WebSocket clients) run in their own "
        "processes on the same machine, so they share its cores with the server.",
        "",
    ]
    targets: list[str] = []
    if "write" in parts:
        out += _write(parts["write"], targets)
    if "lag" in parts:
        out += _lag(parts["lag"], targets)
    if "projector" in parts:
        out += _projector(parts["projector"], targets)
    if "queries" in parts:
        out += _queries(parts["queries"], targets, size.load_seconds)
    if "subscriptions" in parts:
        out += _subscriptions(parts["subscriptions"], targets)
    out += ["## Targets", "", "| | target and result |", "|---|---|", *targets, ""]
    if NOTES.exists():
        out += [NOTES.read_text().strip(), ""]
    return "\n".join(out)


def _write(write: dict[str, Any], targets: list[str]) -> list[str]:
    lines = [
        "## 1. Write path: placeOrder with 3 lines",
        "",
        f"{write['dataset'].customers:,} customers, {write['dataset'].products:,} products, "
        f"{write['dataset'].orders:,} orders already placed (their read models built). "
        "The service (`shop serve`) against pgbench running the same SQL transaction on the "
        "same database; the service three times: as it runs by default (one API process, the "
        "relay and projectors in a child process), with the relay and projectors on the "
        "API's event loop (`SHOP_PIPELINE_PROCESS=false`), and scaled out on this machine "
        "(two API processes, `SHOP_WORKERS=2`); and, as a ceiling, its command path alone "
        "(`SHOP_ROLE=command`: nothing relayed or projected, so no read side to pay for). "
        "The targets are the default's.",
        "",
        "| shop serve | clients | shop mutations/s | p50 ms | p99 ms | failed | pgbench tx/s "
        "| p50 ms | p99 ms | shop / pgbench |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    pgbench = write["pgbench"]
    for name, server in write["servers"].items():
        for clients, shop in server["loads"].items():
            pg = pgbench[clients]
            ratio = shop.requests_per_s / pg.requests_per_s if pg.requests_per_s else 0
            lines.append(
                f"| {name} | {clients} | {_n(shop.requests_per_s)} | {_n(shop.p50_ms, 1)} | "
                f"{_n(shop.p99_ms, 1)} | {shop.failures} | {_n(pg.requests_per_s)} | "
                f"{_n(pg.p50_ms, 1)} | {_n(pg.p99_ms, 1)} | {ratio:.0%} |"
            )
    memory = ", ".join(f"{_n(s['rss_mib'])} MiB ({n})" for n, s in write["servers"].items())
    lines += ["", f"`shop serve` memory after the runs (its processes together): {memory}.", ""]
    lines += _cpu_per_request(write)
    default = next(iter(write["servers"].values()))["loads"]
    if 16 in default and 1 in default:
        ratio = default[16].requests_per_s / pgbench[16].requests_per_s
        slower = default[1].p50_ms / pgbench[1].p50_ms if pgbench[1].p50_ms else math.inf
        targets += [
            _target(ratio >= 0.4, f"placeOrder at 16 clients ≥ 40% of pgbench: {ratio:.0%}"),
            _target(
                slower <= 3,
                f"placeOrder at 1 client, p50 ≤ 3x pgbench's: {_n(default[1].p50_ms, 1)} "
                f"vs {_n(pgbench[1].p50_ms, 1)} ms ({slower:.1f}x)",
            ),
        ]
    return lines


def _cpu_per_request(write: dict[str, Any]) -> list[str]:
    """Where the CPU of one placeOrder goes, each process kind, against pgbench's."""
    runs = {name: server["cpu_ms"] for name, server in write["servers"].items()}
    runs["pgbench, the same transaction"] = write.get("pgbench_cpu_ms", {})
    kinds = sorted({kind for spent in runs.values() for kind in spent})
    if not kinds:
        return []
    lines = [
        "CPU per placeOrder at 16 clients, in milliseconds, by process (this machine has 2 "
        "cores: 2,000 ms of CPU per second at most):",
        "",
        f"| run | {' | '.join(kinds)} | total |",
        f"|---|{'---:|' * (len(kinds) + 1)}",
    ]
    for name, spent in runs.items():
        cells = " | ".join(_n(spent.get(kind, 0.0), 2) for kind in kinds)
        lines.append(f"| {name} | {cells} | {_n(sum(spent.values()), 2)} |")
    return [*lines, ""]


def _lag(runs: dict[str, Any], targets: list[str]) -> list[str]:
    lines = [
        "## 2. Projection lag at half the maximum mutation rate",
        "",
        "Each server at half the placeOrder rate it sustained in section 1. Times run from "
        "the mutation's HTTP response (after its commit), so they slightly understate "
        "commit-to-visible; the row is polled every 2 ms.",
        "",
        "| shop serve | placeOrder/s asked → done | orders (failed) | from the response to "
        "| p50 ms | p99 ms | max ms | never arrived |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for name, lag in runs.items():
        rate = f"{_n(lag['rate_asked'])} → {_n(lag['rate_done'])}"
        orders = f"{lag['orders']:,} ({lag['failures']})"
        for what, key, never in (
            ("the row visible in the read store", "visible", "never_visible"),
            ("the `ordersChanged` event at a WebSocket client", "event", "never_notified"),
        ):
            times = lag[key]
            lines.append(
                f"| {name} | {rate} | {orders} | {what} | {_n(times['p50_ms'], 1)} | "
                f"{_n(times['p99_ms'], 1)} | {_n(times['max_ms'], 1)} | {lag[never]} |"
            )
    lines.append("")
    lag = next(iter(runs.values()))
    visible, event = lag["visible"], lag["event"]
    targets += [
        _target(
            visible["p50_ms"] < 10 and visible["p99_ms"] < 50,
            f"lag to the row at 50% load: p50 < 10 ms, p99 < 50 ms: "
            f"{_n(visible['p50_ms'], 1)} / {_n(visible['p99_ms'], 1)} ms",
        ),
        _target(
            event["p99_ms"] < 80,
            f"lag to `ordersChanged` at 50% load: p99 < 80 ms: {_n(event['p99_ms'], 1)} ms",
        ),
    ]
    return lines


def _projector(projector: dict[str, Any], targets: list[str]) -> list[str]:
    lines = [
        "## 3. Projectors on a backlog",
        "",
        f"{projector['events']:,} events published first (relay: "
        f"{_n(projector['relay_events_per_s'])} events/s), then each projection alone drains "
        "its consumer groups (8 partitions). Rates count stream entries, including those of "
        "aggregates a projection skips.",
        "",
        "| projection | events/s |",
        "|---|---:|",
        *(f"| {name} | {_n(rate)} |" for name, rate in projector["per_projection"].items()),
        "",
    ]
    slowest = min(projector["per_projection"].values())
    targets.append(_target(slowest >= 20_000, f"a projector ≥ 20k events/s: slowest {_n(slowest)}"))
    relay = projector["relay_events_per_s"]
    targets.append(_target(relay >= 50_000, f"the relay ≥ 50k events/s: {_n(relay)}"))
    return lines


_SPEED = ("order(id)", "orders(customerId, first: 20)")
_AGGREGATES = ("customers(TOTAL_SPENT_DESC)", "products(UNITS_SOLD_DESC)", "salesReport(30 days)")


def _versus(cqrs: Any, other: Any, seconds: float) -> tuple[str, str, str]:
    """Another server's rate and p99 beside the service's, and the service's multiple."""
    _, rate = _rate(other, seconds)
    _, times = _ratio(cqrs, other, seconds)
    failed = " (failures!)" if cqrs.failures or other.failures else ""
    p99 = _n(other.p99_ms, 1) if other.requests else "n/a"
    return rate, p99, f"{times}{failed}"


def _queries(queries: dict[int, dict[str, Any]], targets: list[str], seconds: float) -> list[str]:
    lines = [
        "## 4. Queries: the read models against PostGraphile 5 and a CRUD baseline",
        "",
        "The service (`shop serve`) answers from its read models. PostGraphile 5 "
        "(`benchmarks/postgraphile.py`: amber preset, one node process in production mode) and "
        "the CRUD baseline (`benchmarks/crud_baseline.py`: the service's stack) serve the same "
        "fields from the normalized write tables, computing totals per request (PostGraphile "
        "through SQL functions), with the same indexes. Each answers every query like the "
        "service, field by field for the same ids, before it is timed. 16 connections, one "
        "server process each; each request's order or customer id is drawn uniformly from "
        "every order or customer of the data set. The ceiling is a plain Starlette endpoint "
        "answering `{ __typename }` with a constant, served by uvicorn as `shop serve` is.",
        "",
    ]
    for orders, result in queries.items():
        rebuild = result["rebuild_s"]
        graphile = result.get("postgraphile")
        customers = result.get("customers")
        lines += [
            f"### {orders:,} orders ({result['events']:,} events"
            + (f", {customers:,} customers)" if customers else ")"),
            "",
            "| query | service req/s | p99 ms | PostGraphile req/s | p99 ms "
            "| service / PostGraphile | CRUD req/s | p99 ms | service / CRUD |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        if (ceiling := result.get("ceiling")) is not None:
            lines.append(
                f"| `{{ __typename }}` on plain Starlette (the ceiling) | "
                f"{_n(ceiling.requests_per_s)} | {_n(ceiling.p99_ms, 1)} |" + " |" * 6
            )
        for name, cqrs in result["cqrs"].items():
            crud = _versus(cqrs, result["crud"][name], seconds)
            pg = (
                _versus(cqrs, graphile[name], seconds)
                if graphile is not None
                else ("skipped", "n/a", "n/a")
            )
            lines.append(
                f"| `{name}` | {_n(cqrs.requests_per_s)} | {_n(cqrs.p99_ms, 1)} | "
                f"{' | '.join(pg)} | {' | '.join(crud)} |"
            )
        lines.append("")
        if (reference := result.get("reference")) is not None:
            lines += [
                "Before and after the compiled read path, same data, same run: the service "
                "with `SHOP_COMPILED_QUERIES=false` (every query through strawberry, the "
                "reference executor) against the default.",
                "",
                "| query | reference req/s | p99 ms | compiled req/s | p99 ms | compiled / "
                "reference |",
                "|---|---:|---:|---:|---:|---:|",
            ]
            for name, cqrs in result["cqrs"].items():
                before = reference[name]
                lines.append(
                    f"| `{name}` | {_n(before.requests_per_s)} | {_n(before.p99_ms, 1)} | "
                    f"{_n(cqrs.requests_per_s)} | {_n(cqrs.p99_ms, 1)} | "
                    f"{_ratio(cqrs, before, seconds)[1]} |"
                )
            lines.append("")
        if graphile is None:
            why = result.get("postgraphile_skipped") or "not measured in this run"
            lines += [f"PostGraphile was skipped: {why}.", ""]
        elif version := result.get("postgraphile_version"):
            lines += [f"{version}.", ""]
        lines += [
            f"Rebuild of every read model from the log (`shop projections rebuild --all`: one "
            f"pass, four projections): {rebuild:.1f} s, {result['events'] / rebuild:,.0f} "
            "events/s.",
            "",
        ]
    for name in _SPEED:
        _postgraphile_target(
            queries, targets, name, seconds, 2, f"`{name}` ≥ 2x PostGraphile's req/s, lower p99"
        )
    for name in _AGGREGATES:
        _postgraphile_target(queries, targets, name, seconds, 100, f"`{name}` ≥ 100x PostGraphile")
    largest = max(queries)
    result = queries[largest]
    for name in _AGGREGATES:
        ratio, shown = _ratio(result["cqrs"][name], result["crud"][name], seconds)
        targets.append(_target(ratio >= 50, f"`{name}` ≥ 50x CRUD at {largest:,}: {shown}"))
    per_million = result["rebuild_s"] * 1_000_000 / result["events"]
    targets.append(
        _target(per_million < 60, f"rebuild 1M events < 60 s: {per_million:.0f} s per 1M events")
    )
    return lines


def _postgraphile_target(
    queries: dict[int, dict[str, Any]],
    targets: list[str],
    name: str,
    seconds: float,
    times: float,
    text: str,
) -> None:
    """One target line over every data size: the service at least `times` PostGraphile's
    rate there (and for `times` < 100, with a lower p99)."""
    met, shown = True, []
    for orders, result in queries.items():
        graphile = result.get("postgraphile")
        if graphile is None:
            targets.append(f"| not measured | {text}: PostGraphile was skipped |")
            return
        cqrs, other = result["cqrs"][name], graphile[name]
        ratio, ratio_text = _ratio(cqrs, other, seconds)
        met = met and ratio >= times
        if times < 100:
            lower = not other.requests or cqrs.p99_ms < other.p99_ms
            met = met and lower
            other_p99 = _n(other.p99_ms, 1) if other.requests else "n/a"
            ratio_text += f", p99 {_n(cqrs.p99_ms, 1)} vs {other_p99} ms"
        shown.append(f"{orders:,} orders: {ratio_text}")
    targets.append(_target(met, f"{text} at each size: {'; '.join(shown)}"))


def _subscriptions(subs: dict[str, Any], targets: list[str]) -> list[str]:
    lines = [
        "## 5. Subscriptions",
        "",
        "| results | subscribers to one order | connected in s | server RSS before → held MiB | "
        "received the update | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, run in subs["passes"].items():
        for round_ in [run["held"], *run["fanout"]]:
            latency = round_["from_response"]
            lines.append(
                f"| {name} | {round_['subscribers']:,} | {round_['connect_s']:.1f} | "
                f"{_n(round_['rss_before_mib'])} → {_n(round_['rss_held_mib'])} | "
                f"{round_['received']:,} | {_n(latency['p50_ms'], 1)} | "
                f"{_n(latency['p99_ms'], 1)} | {_n(latency['max_ms'], 1)} |"
            )
    lines += [
        "",
        "Latencies run from the payOrder response to the update's arrival at each "
        "subscriber's socket. *per subscriber*: each subscription reads, executes and "
        "serializes on its own (`SHOP_SHARED_SUBSCRIPTIONS=false`, as before shared results); "
        "*shared*: subscribers of the same document, variables and audience share one result "
        "and its bytes (the default).",
        "",
    ]
    shared = subs["passes"]["shared"]
    held = shared["held"]
    total, grown = held["rss_held_mib"], held["rss_held_mib"] - held["rss_before_mib"]
    worst = max((r["from_response"]["p99_ms"] for r in shared["fanout"]), default=math.nan)
    fanout = shared["fanout"][0]["subscribers"] if shared["fanout"] else 0
    targets += [
        _target(
            fanout >= 1_000 and worst < 150,
            f"{fanout:,} subscribers p99 < 150 ms (worst of {len(shared['fanout'])} rounds): "
            f"{_n(worst, 1)} ms",
        ),
        _target(
            held["subscribers"] >= 10_000 and held["from_response"]["p99_ms"] < 500,
            f"{held['subscribers']:,} subscribers p99 < 500 ms: "
            f"{_n(held['from_response']['p99_ms'], 1)} ms",
        ),
        _target(
            held["subscribers"] >= 10_000 and total < 1024,
            f"10k subscribers < 1 GB: {held['subscribers']:,} held in {total:,.0f} MiB "
            f"(+{grown:,.0f} MiB)",
        ),
    ]
    return lines
