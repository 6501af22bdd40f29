"""``run`` and ``worker`` start-up: the resources they need fail with one line naming the fix
(metrics port in use, a simulated chain stored with another configuration), and ``worker``
honours ``--namespace`` and ``--batch-size`` (API.md command line contract)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml
from click.testing import CliRunner

from relayminer.chain.factory import build_chain
from relayminer.cli import main
from relayminer.cli.failures import EXIT_CONFIG, EXIT_RUNTIME, CliFailure
from relayminer.cli.startup import explain_chain_mismatch, start_metrics
from relayminer.config import parse_config
from relayminer.keys import KeyBuilder, Namespace
from relayminer.runtime.connections import connect
from relayminer.sessions.model import decode_hash
from tests.conftest import RealServer
from tests.pipeline.factory import relay_message


@pytest.fixture
def sync_client(real_server: RealServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(real_server.url, protocol=2)
    yield client
    client.close()


def write_config(path: Path, doc: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def test_metrics_port_in_use_is_one_line(tmp_path: Path, real_server: RealServer) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        doc = {
            "suppliers": ["pokt1metrics"],
            "redis": {"url": real_server.url, "namespace": {"base_prefix": "metricsclash"}},
            "metrics": {"port": port},
        }
        result = CliRunner().invoke(
            main, ["run", "--config", str(write_config(tmp_path / "m.yaml", doc))]
        )
    assert result.exit_code == EXIT_RUNTIME
    assert result.stderr == (
        f"relayminer run: metrics port 127.0.0.1:{port} is already in use (another replica on "
        "this host?); set metrics.port to a free port, or metrics.enabled: false\n"
    )


def test_start_metrics_other_bind_failure() -> None:
    with pytest.raises(CliFailure, match=re.escape("cannot serve metrics on 192.0.2.1")):
        start_metrics("192.0.2.1", 0)  # TEST-NET-1: not an address of this host


def test_simulated_chain_mismatch_names_the_field(tmp_path: Path, real_server: RealServer) -> None:
    ns = "mismatch"
    base = {
        "suppliers": ["pokt1mm"],
        "redis": {"url": real_server.url, "namespace": {"base_prefix": ns}},
        "metrics": {"enabled": False},
    }

    async def create() -> None:
        client = connect(real_server.url)
        try:
            for key in [k async for k in client.scan_iter(match=f"{ns}:*")]:
                await client.delete(key)
            config = parse_config(base)
            connection = await build_chain(
                config.chain, client, keys=KeyBuilder(Namespace(ns)), suppliers=config.suppliers
            )
            await connection.close()
        finally:
            await client.aclose()

    asyncio.run(create())
    changed = {
        **base,
        "chain": {"block_time_seconds": 2.5, "shared_params": {"num_blocks_per_session": 6}},
    }
    result = CliRunner().invoke(
        main, ["run", "--config", str(write_config(tmp_path / "c.yaml", changed))]
    )
    assert result.exit_code == EXIT_CONFIG
    line = result.stderr
    assert line.count("\n") == 1 and line.startswith("relayminer run: the simulated chain in Redis")
    assert "chain.block_time_seconds is 1.0 in Redis, 2.5 configured" in line
    assert "chain.shared_params.num_blocks_per_session is 4 in Redis, 6 configured" in line
    assert "use another redis.namespace.base_prefix" in line


def test_explain_chain_mismatch() -> None:
    assert explain_chain_mismatch(None, "{}") == "the stored chain configuration is gone"
    assert (
        explain_chain_mismatch(b"not json", "{}") == "the stored chain configuration cannot be read"
    )
    assert explain_chain_mismatch("{}", "{}") == "the configurations differ"
    stored = '{"suppliers": {"a": ["s"]}, "x": 1}'
    wanted = '{"suppliers": {"b": ["s"]}, "y": 1}'
    assert explain_chain_mismatch(stored, wanted) == (
        "chain.suppliers.a is missing from the configuration; chain.suppliers.b is new in the "
        "configuration; chain.x is missing from the configuration; chain.y is new in the "
        "configuration"
    )
    many = {f"k{i}": i for i in range(6)}
    text = explain_chain_mismatch(str(many).replace("'", '"'), "{}")
    assert text.endswith("; and 2 more")


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["journal", "go"])
def test_worker_namespace_batch_size_and_layout(
    sync_client: redis.Redis, real_server: RealServer, layout: str
) -> None:
    ns, sup, n = f"wns{layout}", "pokt1nsworker", 40
    for key in sync_client.scan_iter(match=f"{ns}:*"):
        sync_client.delete(key)
    rng = random.Random(14)
    hashes = set()
    for _ in range(n):
        msg = relay_message(rng, sup, "sess-a")
        hashes.add(hashlib.sha256(msg.relay_bytes).digest())
        sync_client.xadd(f"{ns}:relays:{sup}", {"data": msg.SerializeToString()})
    cmd = [sys.executable, "-m", "relayminer", "worker", "--redis-url", real_server.url]
    cmd += ["--supplier", sup, "--namespace", ns, "--batch-size", "7", "--block-ms", "50"]
    cmd += ["--smst-layout", layout]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "RELAYMINER_TRACE": "1"}
    )
    assert proc.stdout is not None
    accounted, reads = 0, []
    try:
        while accounted < n:
            line = proc.stdout.readline()
            assert line, f"worker exited ({proc.poll()})"
            _trace, step, size = line.split()
            if step == "read":
                reads.append(int(size))
            elif step == "accounted":
                accounted += int(size)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert max(reads) <= 7 and len([r for r in reads if r]) >= n // 7
    snap = decode_hash("k", sync_client.hgetall(f"{ns}:miner:sessions:{sup}:sess-a"))
    assert snap.relay_count == n
    if layout == "journal":  # the gate is the leaf journal (docs/leaf-journal.md)
        assert sync_client.hlen(f"{ns}:smst:{sup}:sess-a:leaves") == len(hashes) == n
        assert not sync_client.exists(f"{ns}:smst:{sup}:sess-a:nodes")
    else:  # the Go layout: node hash + dedup set
        assert not sync_client.exists(f"{ns}:smst:{sup}:sess-a:leaves")
        assert sync_client.exists(f"{ns}:smst:{sup}:sess-a:nodes")
        assert sync_client.scard(f"{ns}:miner:dedup:session:sess-a") == len(hashes) == n
    assert not sync_client.exists(f"ha:miner:sessions:{sup}:sess-a")  # nothing in the default
