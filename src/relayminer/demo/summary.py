"""What a demo run reports: the live progress and the final summary (``--json``).

Besides relays, sessions and rewards, the summary carries what an operator sizing a replica
needs (``docs/lifecycle.md``, "Priority and timing"):

- ``submit_delay_blocks``: per phase, how many blocks after its window opened each claim and
  proof was broadcast (0: at the first block; p50, p99, max);
- ``txs_failed_at_execution``: claim and proof txs the chain included with a non-zero code;
- ``cpu_seconds`` / ``cpu_share``: the demo process's CPU time (the miner, the load generator
  and the simulated chain; the embedded Redis server is its own process);
- ``rss_mb``: the process's resident memory after warm-up (a quarter into the run), halfway,
  at the end, and its maximum, sampled at every progress refresh.

>>> d = SubmitDelays()
>>> for blocks in [0] * 98 + [1, 3]:
...     d.add("claim", blocks)
>>> d.as_dict()["claim"]
{'count': 100, 'p50': 0, 'p99': 1, 'max': 3}
"""

from __future__ import annotations

import math
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DemoProgress",
    "DemoSummary",
    "MemorySampler",
    "SubmitDelays",
    "counted_percentile",
    "percentile",
]


def percentile(values: list[int], q: float) -> int:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of ``values`` (0 when empty).

    >>> percentile([5, 1, 3], 50), percentile(list(range(1, 101)), 99), percentile([], 99)
    (3, 99, 0)
    """
    return counted_percentile(Counter(values), q)


@dataclass
class SubmitDelays:
    """Blocks from a window opening to the broadcast, per phase: a count per delay, so a run of
    any length holds a few entries (delays are a handful of distinct block counts)."""

    by_phase: dict[str, Counter[int]] = field(default_factory=dict)

    def add(self, phase: str, blocks: int) -> None:
        self.by_phase.setdefault(phase, Counter())[blocks] += 1

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {
            phase: {
                "count": counts.total(),
                "p50": counted_percentile(counts, 50),
                "p99": counted_percentile(counts, 99),
                "max": max(counts, default=0),
            }
            for phase, counts in sorted(self.by_phase.items())
        }


def counted_percentile(counts: Counter[int], q: float) -> int:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of the values ``counts`` holds, each
    as often as it is counted (0 when empty): the one implementation behind :func:`percentile`.

    >>> counted_percentile(Counter({0: 98, 1: 1, 3: 1}), 99), counted_percentile(Counter(), 50)
    (1, 0)
    """
    total = counts.total()
    if total == 0:
        return 0
    rank = max(1, math.ceil(q / 100 * total))
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= rank:
            return value
    raise AssertionError("unreachable: the ranks add up to the total")  # pragma: no cover


def _rss_mb() -> float:
    """The resident set size now (Linux ``/proc``; elsewhere the peak from ``getrusage``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


@dataclass
class MemorySampler:
    """RSS samples over a run, and CPU time since it started."""

    started: float = field(default_factory=time.monotonic)
    cpu_started: float = field(default_factory=time.process_time)
    #: (seconds since the start, RSS MB); thinned to every other sample when full, so a long
    #: run keeps at most ``max_samples`` spread over its whole length
    samples: list[tuple[float, float]] = field(default_factory=list)
    max_samples: int = 1024
    peak_mb: float = 0.0

    def sample(self) -> None:
        rss = _rss_mb()
        self.peak_mb = max(self.peak_mb, rss)
        if len(self.samples) >= self.max_samples:
            self.samples = self.samples[::2]
        self.samples.append((time.monotonic() - self.started, rss))

    def cpu_seconds(self) -> float:
        return time.process_time() - self.cpu_started

    def rss(self) -> dict[str, float]:
        """RSS after warm-up (the first sample a quarter into the run), halfway, at the end,
        and at its maximum."""
        if not self.samples:
            return {}
        duration = self.samples[-1][0]

        def at(share: float) -> float:
            return next(
                (mb for t, mb in self.samples if t >= duration * share), self.samples[-1][1]
            )

        return {
            "after_warmup": round(at(0.25), 1),
            "half": round(at(0.5), 1),
            "end": round(self.samples[-1][1], 1),
            "max": round(self.peak_mb, 1),
        }


@dataclass
class DemoProgress:
    """What the live display shows."""

    phase: str  # "load", "settling", "done"
    height: int
    relays_published: int
    relays_mined: int  # as the workers reported their batches
    published_per_second: float
    mined_per_second: float
    sessions_by_state: dict[str, int]
    claims_submitted: int
    proofs_submitted: int
    claims_settled: int
    elapsed_seconds: float
    settle_height: int | None = None  # the height the demo waits for (after the load)


@dataclass
class DemoSummary:
    """The outcome of a demo run (``as_dict`` is the ``--json`` document)."""

    relays_published: int
    relays_mined: int
    sessions: int
    sessions_proved: int
    sessions_probabilistic_proved: int
    sessions_failed: int
    sessions_by_state: dict[str, int]
    sessions_settled: int
    claims_submitted: int
    proofs_submitted: int
    claims_settled: int
    claims_expired: int
    rewards_upokt: dict[str, int]
    rewards_total_upokt: int
    suppliers: list[str]
    published_per_supplier: dict[str, int]
    start_height: int
    end_height: int
    duration_seconds: float
    load_seconds: float
    relays_per_second: float
    chain: dict[str, int]
    redis: str = "external"
    redis_server_pid: int | None = None
    submit_delay_blocks: dict[str, dict[str, int]] = field(default_factory=dict)
    txs_failed_at_execution: int = 0
    cpu_seconds: float = 0.0
    rss_mb: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def blocks(self) -> int:
        return self.end_height - self.start_height

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "relays_published": self.relays_published,
            "relays_mined": self.relays_mined,
            "sessions": self.sessions,
            "sessions_proved": self.sessions_proved,
            "sessions_probabilistic_proved": self.sessions_probabilistic_proved,
            "sessions_failed": self.sessions_failed,
            "sessions_by_state": dict(self.sessions_by_state),
            "sessions_settled": self.sessions_settled,
            "claims_submitted": self.claims_submitted,
            "proofs_submitted": self.proofs_submitted,
            "claims_settled": self.claims_settled,
            "claims_expired": self.claims_expired,
            "rewards_upokt": dict(self.rewards_upokt),
            "rewards_total_upokt": self.rewards_total_upokt,
            "suppliers": list(self.suppliers),
            "published_per_supplier": dict(self.published_per_supplier),
            "start_height": self.start_height,
            "end_height": self.end_height,
            "blocks": self.blocks,
            "duration_seconds": round(self.duration_seconds, 3),
            "load_seconds": round(self.load_seconds, 3),
            "relays_per_second": round(self.relays_per_second, 1),
            "chain": dict(self.chain),
            "redis": self.redis,
            "redis_server_pid": self.redis_server_pid,
            "submit_delay_blocks": dict(self.submit_delay_blocks),
            "txs_failed_at_execution": self.txs_failed_at_execution,
            "cpu_seconds": round(self.cpu_seconds, 1),
            "cpu_share": round(self.cpu_seconds / self.duration_seconds, 2)
            if self.duration_seconds > 0
            else 0.0,
            "rss_mb": dict(self.rss_mb),
            "problems": list(self.problems),
        }
