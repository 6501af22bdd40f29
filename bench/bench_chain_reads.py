"""A block's events read by every supplier of a replica: the per-supplier index against a scan.

    .venv/bin/python bench/bench_chain_reads.py [--suppliers 1000] [--events-per-supplier 10]

Each owned supplier's settlement recorder reads the events of every new block
(``lifecycle/settlement.py``). Before, each one scanned the whole block for its own events, so
a replica did ``suppliers x events`` checks per block; ``SharedChainReads`` (``chain/cache.py``)
now indexes a committed block's events by supplier once (``supplier_events``). The baseline, in
the same run, is that scan: every supplier filtering the block's full event list. The chain is
an in-memory stub, so only the miner's CPU is measured. Writes ``bench/results/chain_reads.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from relayminer.chain.base import Block, ChainEvent
from relayminer.chain.cache import SUPPLIER_ATTRIBUTE, SharedChainReads, supplier_events

RESULTS = Path(__file__).resolve().parent / "results" / "chain_reads.json"


class BlockOfEvents:
    """A chain stub whose every block holds ``per_supplier`` settlement events per supplier."""

    def __init__(self, suppliers: list[str], per_supplier: int) -> None:
        self.suppliers, self.per_supplier, self.height = suppliers, per_supplier, 1

    async def events(self, a: int, b: int) -> list[ChainEvent]:
        return [
            ChainEvent(h, "EventClaimSettled", {SUPPLIER_ATTRIBUTE: s, "session_id": f"{s}-{i}"})
            for h in range(a, b + 1)
            for s in self.suppliers
            for i in range(self.per_supplier)
        ]

    async def latest_block(self) -> Block:
        return Block(self.height, b"h" * 32, 0.0)


async def one_block(suppliers: int, per_supplier: int, blocks: int) -> dict[str, float]:
    names = [f"pokt1supplier{i:04d}" for i in range(suppliers)]
    chain = BlockOfEvents(names, per_supplier)
    scan_s = index_s = 0.0
    for height in range(2, blocks + 2):
        chain.height = height
        block_events = await chain.events(height, height)
        t0 = time.perf_counter()
        scanned = [
            [e for e in block_events if e.attributes.get(SUPPLIER_ATTRIBUTE) == s] for s in names
        ]
        scan_s += time.perf_counter() - t0
        reads = SharedChainReads(chain)  # type: ignore[arg-type]
        await reads.latest_block()
        await reads.events(height, height)  # the block read once, as in a replica
        t0 = time.perf_counter()
        indexed = await asyncio.gather(*(supplier_events(reads, s, height, height) for s in names))
        index_s += time.perf_counter() - t0
        assert indexed == scanned
    return {
        "scan_ms_per_block": 1000 * scan_s / blocks,
        "index_ms_per_block": 1000 * index_s / blocks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suppliers", type=int, default=1000)
    parser.add_argument("--events-per-supplier", type=int, default=10)
    parser.add_argument("--blocks", type=int, default=5)
    args, _ = parser.parse_known_args()
    r = asyncio.run(one_block(args.suppliers, args.events_per_supplier, args.blocks))
    ratio = r["scan_ms_per_block"] / r["index_ms_per_block"]
    print(
        f"{args.suppliers} suppliers x {args.events_per_supplier} events each per block: "
        f"index {r['index_ms_per_block']:.1f} ms/block, scan (baseline) "
        f"{r['scan_ms_per_block']:.1f} ms/block: {ratio:.1f}x less CPU"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "python": sys.version.split()[0],
                "machine": platform.machine(),
                "suppliers": args.suppliers,
                "events_per_supplier": args.events_per_supplier,
                **{k: round(v, 2) for k, v in r.items()},
                "scan_over_index": round(ratio, 1),
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
