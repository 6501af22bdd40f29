"""Redis memory per relay: the leaf journal against the Go node layout, and a few alternatives.

    .venv/bin/python bench/bench_memory.py [--relays 100000] [--sessions 1000] [--relay-bytes 250]

Every variant gets a fresh ``redis-server`` (started for the run), so each figure is
``used_memory`` after - before on an otherwise empty server, divided by the relays written:
what one relay costs with the stream drained (entries are acked and deleted in the same atomic
step, so a drained stream holds nothing per relay; no stream is written here). Each variant
stores, per session, the session snapshot hash the worker creates on first sight (every field
of :class:`relayminer.sessions.model.SessionSnapshot`) and moves its counters by HINCRBY once
per batch, as the accounting step does. Relays arrive round-robin over the sessions in batches
of ``--batch`` (each batch spread over all sessions).

Variants:

* ``journal`` (the default layout): one HSETNX per relay into ``...:leaves`` through
  :data:`relayminer.smst.journal.JOURNAL_INSERT`; the journal is the exactly-once gate.
* ``journal + dedup set``: the same, plus the Go dedup SET (``ha:miner:dedup:session:{sid}``,
  raw 32-byte members) still written as a second gate.
* ``go node layout + dedup set``: today's layout, :class:`RedisSMSTStore` ``apply`` per session
  and batch (nodes hash with 96-char hex fields, ``live_root``) plus the dedup SET.
* alternatives for the journal entry (same HSETNX gate, other encodings): the weight as 8 fixed
  bytes; the field as 64-char hex. And ``list + dedup set``: relay values RPUSHed to a list, the
  dedup SET as the gate.

Prints a markdown table and writes ``bench/results/memory.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import platform
import random
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench_smst_memory import write_report
from relayminer.keys import KeyBuilder
from relayminer.runtime.connections import connect
from relayminer.runtime.embedded import start_server
from relayminer.sessions.model import SessionSnapshot, SessionState
from relayminer.sessions.store import RedisSessionStore, SessionStoreConfig
from relayminer.smst.journal import JOURNAL_INSERT, insert_args, journal_keys
from relayminer.smst.redis_store import RedisSMSTStore

RESULTS = Path(__file__).resolve().parent / "results" / "memory.json"
SUPPLIER = "pokt1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"  # a realistic 43-character address
TTL = 7200
CU = 42

Leaf = tuple[bytes, bytes, int]
Writer = Callable[[Redis, dict[str, list[Leaf]]], Awaitable[None]]


def session_ids(n: int) -> list[str]:
    # poktroll session ids are 64 hex characters.
    return [hashlib.sha256(f"session-{i}".encode()).hexdigest() for i in range(n)]


def make_batches(args: argparse.Namespace, sids: list[str]) -> list[dict[str, list[Leaf]]]:
    """Relays round-robin over the sessions, cut into batches of ``args.batch``."""
    rng = random.Random(args.seed)
    batches: list[dict[str, list[Leaf]]] = []
    current: dict[str, list[Leaf]] = {}
    for i in range(args.relays):
        value = rng.randbytes(args.relay_bytes)
        current.setdefault(sids[i % len(sids)], []).append(
            (hashlib.sha256(value).digest(), value, CU)
        )
        if (i + 1) % args.batch == 0:
            batches.append(current)
            current = {}
    if current:
        batches.append(current)
    return batches


async def create_sessions(redis: Redis, sids: list[str]) -> None:
    store = RedisSessionStore(redis, SessionStoreConfig(SUPPLIER, session_ttl_seconds=TTL))
    now = datetime.now(UTC)
    for sid in sids:
        await store.create_if_absent(
            SessionSnapshot(
                session_id=sid,
                supplier_operator_address=SUPPLIER,
                service_id="anvil",
                application_address="pokt1" + "a" * 38,
                session_start_height=1000,
                session_end_height=1010,
                state=SessionState.ACTIVE,
                created_at=now,
                last_updated_at=now,
            )
        )


def count(pipe: Any, sid: str, new: int) -> None:
    """The accounting step's counter moves for ``new`` relays (queued on ``pipe``)."""
    key = KeyBuilder().miner_session_key(SUPPLIER, sid)
    pipe.hincrby(key, "relay_count", new)
    pipe.hincrby(key, "total_compute_units", new * CU)


# --- variants: each writes one batch (every session's relays of it) ------------------------
# Relays are all distinct here, so "new" is the batch size; one pipeline per batch keeps the
# run short on a busy machine (the memory figures do not depend on round trips).


def journal_writer(field_hex: bool = False, fixed_weight: bool = False) -> Writer:
    async def write(redis: Redis, batch: dict[str, list[Leaf]]) -> None:
        pipe = redis.pipeline(transaction=False)
        for sid, leaves in batch.items():
            keys = journal_keys(SUPPLIER, sid)
            if field_hex or fixed_weight:
                for relay_hash, relay, weight in leaves:
                    field = relay_hash.hex().encode() if field_hex else relay_hash
                    value = weight.to_bytes(8, "big") + relay if fixed_weight else b"\x2a" + relay
                    pipe.hsetnx(keys.leaves, field, value)
                pipe.expire(keys.leaves, TTL)
            else:
                pipe.eval(JOURNAL_INSERT, 2, keys.leaves, keys.root, TTL, *insert_args(leaves))
            count(pipe, sid, len(leaves))
        await pipe.execute()

    return write


def with_dedup_set(inner: Writer) -> Writer:
    async def write(redis: Redis, batch: dict[str, list[Leaf]]) -> None:
        pipe = redis.pipeline(transaction=False)
        for sid, leaves in batch.items():
            key = KeyBuilder().miner_dedup_session_key(sid)
            pipe.sadd(key, *[leaf[0] for leaf in leaves])
            pipe.expire(key, TTL)
        await pipe.execute()
        await inner(redis, batch)

    return write


async def list_writer(redis: Redis, batch: dict[str, list[Leaf]]) -> None:
    pipe = redis.pipeline(transaction=False)
    for sid, leaves in batch.items():
        key = f"ha:smst:{SUPPLIER}:{sid}:leaflist"
        pipe.rpush(key, *[b"\x2a" + leaf[1] for leaf in leaves])
        pipe.expire(key, TTL)
        count(pipe, sid, len(leaves))
    await pipe.execute()


def go_layout_writer() -> Writer:
    stores: dict[int, RedisSMSTStore] = {}

    async def write(redis: Redis, batch: dict[str, list[Leaf]]) -> None:
        store = stores.get(id(redis))
        if store is None:  # one store per server; every tree stays cached (no reloads)
            store = stores[id(redis)] = RedisSMSTStore(
                redis, SUPPLIER, ttl_seconds=TTL, max_cached_trees=1 << 20
            )
        for sid, leaves in batch.items():
            assert await store.apply(sid, leaves)
        pipe = redis.pipeline(transaction=False)
        for sid, leaves in batch.items():
            count(pipe, sid, len(leaves))
        await pipe.execute()

    return write


VARIANTS: dict[str, Callable[[], Writer]] = {
    "journal (HSETNX gate)": lambda: journal_writer(),
    "journal + dedup set": lambda: with_dedup_set(journal_writer()),
    "go node layout + dedup set": lambda: with_dedup_set(go_layout_writer()),
    "alt: journal, 8-byte weight": lambda: journal_writer(fixed_weight=True),
    "alt: journal, hex field": lambda: journal_writer(field_hex=True),
    "alt: list + dedup set": lambda: with_dedup_set(list_writer),
}


async def used_memory(redis: Redis) -> int:
    info = await redis.info("memory")
    return int(info["used_memory"])


async def run_variant(
    name: str, writer: Writer, batches: list[dict[str, list[Leaf]]], sids: list[str]
) -> dict[str, Any]:
    server = start_server()
    probe = connect(server.url)  # reads INFO only, so the writer's buffers are gone by then
    redis = connect(server.url)
    try:
        before = await used_memory(probe)
        await create_sessions(redis, sids)
        started = time.perf_counter()
        for batch in batches:
            await writer(redis, batch)
        seconds = time.perf_counter() - started
        relays = sum(len(leaves) for batch in batches for leaves in batch.values())
        await redis.aclose()  # free the writer's client query/reply buffers
        await asyncio.sleep(0.2)  # bench only: let the server notice the closed connections
        after = await used_memory(probe)
        keys = await probe.dbsize()
        return {
            "variant": name,
            "relays": relays,
            "keys": keys,
            "used_memory_growth": after - before,
            "bytes_per_relay": round((after - before) / relays, 1),
            "write_seconds": round(seconds, 2),
        }
    finally:
        await redis.aclose()
        await probe.aclose()
        server.stop()


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    sids = session_ids(args.sessions)
    batches = make_batches(args, sids)
    rows = []
    for name, factory in VARIANTS.items():
        if args.only and args.only not in name:
            continue
        row = await run_variant(name, factory(), batches, sids)
        print(f"{name}: {row['bytes_per_relay']} B/relay", flush=True)
        rows.append(row)
    probe = start_server()
    redis = connect(probe.url)
    try:
        version = (await redis.info("server"))["redis_version"]
    finally:
        await redis.aclose()
        probe.stop()
    return {
        "benchmark": "memory",
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "redis_version": version,
        "config": {
            "relays": args.relays,
            "sessions": args.sessions,
            "relay_bytes": args.relay_bytes,
            "batch": args.batch,
            "weight": CU,
            "seed": args.seed,
        },
        "target_bytes_per_relay": 450,
        "stretch_bytes_per_relay": 350,
        "results": rows,
    }


def markdown(report: dict[str, Any]) -> str:
    base = next((r for r in report["results"] if r["variant"].startswith("go node layout")), None)
    lines = [
        "| layout | B/relay | vs go node layout | keys | write s |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        ratio = f"{r['bytes_per_relay'] / base['bytes_per_relay']:.2f}x" if base else "n/a"
        lines.append(
            f"| {r['variant']} | {r['bytes_per_relay']:.0f} | {ratio} | {r['keys']} | "
            f"{r['write_seconds']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--relays", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=1_000)
    parser.add_argument("--relay-bytes", type=int, default=250)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--only", default="", help="run only the variants whose name has this")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    report = asyncio.run(measure(args))
    print(markdown(report))
    write_report(args.output, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
