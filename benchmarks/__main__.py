"""Run the benchmark suite: `python -m benchmarks [--size small|full] [--only ...] [--output F]`.

Every part starts its own stores and servers, so parts can run alone. The report is
Markdown: the machine, the command, one table per part, and each target met or missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import sys
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from benchmarks import lag, projector, queries, subscriptions, write_path
from benchmarks.harness import ROOT, BenchError, log, machine, open_servers
from benchmarks.report import render
from benchmarks.sizes import SIZES
from devtools.processes import StartError
from devtools.stores import server_versions

PARTS = ("write", "lag", "projector", "queries", "subscriptions")


async def run(size_name: str, parts: list[str]) -> dict[str, Any]:
    size = SIZES[size_name]
    results: dict[str, Any] = {"size": size, "machine": machine(), "parts": {}}
    started = time.perf_counter()
    with open_servers() as servers:
        results["servers"] = {
            "where": servers.description,
            **await server_versions(servers.postgres_url, servers.redis_url),
        }
        if "write" in parts or "lag" in parts:
            results["parts"]["write"] = await write_path.run(servers, size)
        if "lag" in parts:
            # Each server at half the rate it sustained (its best in the write path).
            measured = results["parts"]["write"]["servers"]
            results["parts"]["lag"] = {
                name: await lag.run(
                    servers, size, max(r.requests_per_s for r in measured[name]["loads"].values()),
                    **env,
                )
                for name, env in write_path.SERVERS.items()
            }  # fmt: skip
        if "projector" in parts:
            results["parts"]["projector"] = await projector.run(servers, size.backlog_orders)
        if "queries" in parts:
            results["parts"]["queries"] = await queries.run(servers, size)
        if "subscriptions" in parts:
            results["parts"]["subscriptions"] = await subscriptions.run(servers, size)
    results["seconds"] = time.perf_counter() - started
    return results


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated: {PARTS}")
    parser.add_argument("--output", type=Path, help="Markdown report (default: bench-results/)")
    parser.add_argument(
        "--render", type=Path, metavar="PICKLE",
        help="write the report again from a run's saved results (after editing NOTES.md)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.render:
        saved = pickle.loads(args.render.read_bytes())
        output = args.output or args.render.with_suffix(".md")
        output.write_text(render(saved["results"], saved["command"]))
        log(f"rendered {output}")
        return 0
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    command = "python -m benchmarks " + " ".join(sys.argv[1:])
    try:
        results = asyncio.run(run(args.size, parts))
    except (BenchError, StartError) as error:
        log(f"failed: {error}")
        return 1
    output = args.output or ROOT / "bench-results" / f"{args.size}.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(results, command))
    output.with_suffix(".json").write_text(json.dumps(_plain(results), indent=2, default=str))
    saved = ROOT / "bench-results" / f"{args.size}.pickle"
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_bytes(pickle.dumps({"results": results, "command": command}))
    log(f"done in {results['seconds']:.0f} s: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
