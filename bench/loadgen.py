"""`python -m bench.loadgen MODE ...`: the load generators, each its own process.

Every mode prints one JSON object (its result) as the last line of stdout. The
benchmark pins these processes to another core than the server they measure.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Coroutine
from typing import Any

import orjson
import uvloop


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    modes = parser.add_subparsers(dest="mode", required=True)
    p = modes.add_parser("webhooks", help="closed-loop signed webhooks (P1)")
    p.add_argument("--url", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--run-id", required=True)
    p.add_argument("--requests", type=int, required=True)
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--warmup", type=int, default=0)
    p = modes.add_parser("e2e", help="webhooks at a fixed rate, timed to their frames (P3)")
    p.add_argument("--spec", required=True, help="JSON file: connectors, ws_url, accounts")
    p.add_argument("--run-id", default="p3", help="makes the message ids of this run unique")
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--warmup", type=float, default=0)
    p = modes.add_parser("kafka-rtt", help="produce -> consume round trips (P3 baseline)")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--warmup", type=float, default=0)
    p = modes.add_parser("store-write", help="bulk upserts and inserts of messages (P2 baseline)")
    p.add_argument("--url", required=True)
    p.add_argument("--insert-db", required=True)
    p.add_argument("--upsert-db", required=True)
    p.add_argument("--messages", type=int, required=True)
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--conversations", type=int, required=True)
    p.add_argument("--batch", type=int, required=True)
    return parser


def _job(args: argparse.Namespace) -> Coroutine[Any, Any, dict[str, Any]]:
    if args.mode == "webhooks":
        from bench import load_webhooks

        return load_webhooks.run(
            args.url, args.secret, args.run_id, args.requests, args.concurrency, args.warmup
        )
    if args.mode == "e2e":
        from pathlib import Path

        from bench import load_e2e

        spec = orjson.loads(Path(args.spec).read_bytes())
        return load_e2e.run(
            spec["connectors"],
            spec["ws_url"],
            spec["accounts"],
            spec["secret"],
            args.rate,
            args.duration,
            args.warmup,
            run_id=args.run_id,
            hops=spec.get("hops"),
            media=spec.get("media"),
        )
    if args.mode == "kafka-rtt":
        from bench import load_kafka

        return load_kafka.run(args.bootstrap, args.topic, args.rate, args.duration, args.warmup)
    from bench import load_store

    return load_store.run(
        args.url,
        args.insert_db,
        args.upsert_db,
        args.messages,
        args.users,
        args.conversations,
        args.batch,
    )


def main(argv: list[str] | None = None) -> None:
    """Run one mode and print its result as JSON."""
    args = _parser().parse_args(argv)
    # uvloop (from uvicorn[standard]) keeps the load generator the cheaper side.
    result = uvloop.run(_job(args))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
