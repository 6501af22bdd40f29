"""The relay worker as a real process against a real server: kill -9 at random batch steps,
a Redis restart mid-run, graceful SIGTERM (issue 'Relay pipeline' (b), (e), item 4).

The worker runs with RELAYMINER_TRACE=1 and prints one line per batch step ("read", "smst",
"accounted"); the tests act on those lines (kill, restart), never on a timer.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from relayminer.pipeline.relays import MinedRelayMessage
from relayminer.runtime.embedded import start_server
from relayminer.sessions.model import decode_hash
from relayminer.smst.bulk import bulk_root
from relayminer.smst.journal import decode_leaf_value
from tests.conftest import RealServer
from tests.pipeline.factory import Expected, workload

pytestmark = pytest.mark.slow
SUP = "pokt1crash"
STREAM = f"ha:relays:{SUP}"


@pytest.fixture
def r(real_server: RealServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(real_server.url, protocol=2)
    client.flushall()
    yield client
    client.close()


def publish(client: redis.Redis, msgs: list[MinedRelayMessage]) -> None:
    for i in range(0, len(msgs), 2000):
        pipe = client.pipeline(transaction=False)
        for m in msgs[i : i + 2000]:
            pipe.xadd(STREAM, {"data": m.SerializeToString()})
        pipe.execute()


def start_worker(url: str, name: str, log: Path, *extra: str) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        "-m",
        "relayminer",
        "worker",
        "--redis-url",
        url,
        "--supplier",
        SUP,
        "--consumer-name",
        name,
        "--batch-size",
        "500",
        "--block-ms",
        "100",
        "--claim-idle-ms",
        "100",
        *extra,
    ]
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=log.open("a"),
        text=True,
        env={**os.environ, "RELAYMINER_TRACE": "1"},
    )


def next_step(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"worker exited unexpectedly (code {proc.poll()})"
    return line.split()[1]


def done(client: redis.Redis) -> bool:
    pending = client.xpending(STREAM, "ha-miners")["pending"] if client.exists(STREAM) else 0
    return client.xlen(STREAM) == 0 and pending == 0


def run_until_done(client: redis.Redis, proc: subprocess.Popen[str]) -> None:
    while not done(client):
        while next_step(proc) != "accounted":
            pass
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def verify(client: redis.Redis, expected: dict[tuple[str, str], Expected]) -> None:
    for (sup, sess), exp in expected.items():
        snap = decode_hash("k", client.hgetall(f"ha:miner:sessions:{sup}:{sess}"))
        assert (snap.relay_count, snap.total_compute_units) == (exp.relay_count, exp.compute_units)
        # The worker runs the default layout, the leaf journal: it is the gate (no dedup set).
        leaves = client.hgetall(f"ha:smst:{sup}:{sess}:leaves")
        assert len(leaves) == exp.relay_count
        assert not client.exists(f"ha:miner:dedup:session:{sess}")
        decoded = [(k, *reversed(decode_leaf_value(v))) for k, v in leaves.items()]
        assert bulk_root(decoded) == exp.trie.root()  # type: ignore[arg-type]
    assert client.xlen(f"{STREAM}:dead") == 0
    assert done(client)


def test_kill_9_at_random_steps_loses_nothing_and_counts_nothing_twice(
    r: redis.Redis, real_server: RealServer, tmp_path: Path
) -> None:
    msgs, expected = workload(
        20, [SUP], ["sess-a", "sess-b", "sess-c", "sess-d"], 50_000, duplicate_every=97
    )
    publish(r, msgs)
    rng = random.Random(2026)
    log = tmp_path / "worker.log"
    kills = []
    for i in range(12):
        name = "stable" if i % 2 == 0 else f"worker-{i}"  # same-name restarts and new names
        proc = start_worker(real_server.url, name, log, "--max-retries", "100")
        # Every crash point is hit (before the SMST commit, between it and the accounting
        # step, after it); which batch is hit is random.
        step, nth = ("read", "smst", "accounted")[i % 3], rng.randint(1, 4)
        seen = 0
        while seen < nth:
            if next_step(proc) == step:
                seen += 1
        proc.kill()  # SIGKILL
        proc.wait()
        kills.append((step, nth))
    assert not done(r), "the crash loop must end with work left over"
    run_until_done(r, start_worker(real_server.url, "final", log, "--max-retries", "100"))
    verify(r, expected)
    assert len(kills) == 12 and {s for s, _ in kills} == {"read", "smst", "accounted"}


def test_redis_restart_mid_run_reconnects_and_loses_nothing(tmp_path: Path) -> None:
    workdir = tmp_path / "redis"
    aof = ("--appendonly", "yes", "--appendfsync", "always")
    server = start_server(workdir=workdir, extra_args=aof)
    port = server.port
    url = server.url
    client = redis.Redis.from_url(url, protocol=2)
    msgs, expected = workload(21, [SUP], ["sess-a", "sess-b"], 12_000)
    publish(client, msgs[:8000])
    proc = start_worker(url, "w", tmp_path / "worker.log")
    try:
        accounted = 0
        while accounted < 3:
            accounted += next_step(proc) == "accounted"
        server.kill()  # the server dies mid-run (SIGKILL)
        server = start_server(server.binary, port=port, workdir=workdir, extra_args=aof)
        client = redis.Redis.from_url(url, protocol=2)
        publish(client, msgs[8000:])
        run_until_done(client, proc)
        verify(client, expected)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()


def test_sigterm_finishes_the_batch_in_hand(
    r: redis.Redis, real_server: RealServer, tmp_path: Path
) -> None:
    msgs, _ = workload(22, [SUP], ["sess-a"], 5000)
    publish(r, msgs)
    proc = start_worker(real_server.url, "graceful", tmp_path / "worker.log")
    assert next_step(proc) == "read"
    proc.send_signal(signal.SIGTERM)  # arrives while the first batch is being processed
    assert proc.wait(timeout=30) == 0
    assert r.xpending(STREAM, "ha-miners")["pending"] == 0  # nothing left half-done
    snap = decode_hash("k", r.hgetall(f"ha:miner:sessions:{SUP}:sess-a"))
    assert snap.relay_count + r.xlen(STREAM) == 5000
