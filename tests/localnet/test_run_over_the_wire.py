"""``relayminer run`` with ``chain.type: pocket`` against ``relayminer localnet``, as processes
(the real server only): relays published for one session end claimed, proved and settled,
every transaction signed by the miner and checked by the node over loopback."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import yaml

from relayminer.chain.sim.chain import SimulatedChain
from relayminer.chain.sim.loadgen import LoadGenerator
from relayminer.keys import KeyBuilder
from relayminer.runtime.connections import connect
from relayminer.runtime.embedded import start_server
from relayminer.sessions.model import SessionSnapshot, SessionState
from relayminer.sessions.store import RedisSessionStore, SessionStoreConfig
from tests.cli.watched import Watched
from tests.localnet.processes import pocket_chain_block, start_localnet, until, write_keys_file
from tests.localnet.support import SUPPLIER, make_config


async def publish_and_wait_for_settlement(url: str) -> list[SessionSnapshot]:
    redis = connect(url)
    kb = KeyBuilder()
    chain = await SimulatedChain.attach(redis, keys=kb)
    store = RedisSessionStore(
        redis, SessionStoreConfig(SUPPLIER.address, kb.miner_sessions_prefix(), 7200)
    )
    try:
        loadgen = LoadGenerator(
            redis, chain, [SUPPLIER.address], relays_per_second=100, seed=9, sessions=2, keys=kb
        )
        stats = await loadgen.run()
        assert stats.published > 0

        async def settled() -> bool:
            sessions = await store.get_by_supplier()
            return bool(sessions) and all(s.settlement_outcome is not None for s in sessions)

        await until(chain, settled)
        sessions: list[SessionSnapshot] = await store.get_by_supplier()
        assert sum(s.relay_count for s in sessions) == stats.published
        return sessions
    finally:
        await chain.close()
        await redis.aclose()


def test_run_with_a_pocket_chain_proves_and_settles_on_a_localnet(tmp_path: Path) -> None:
    server = start_server()
    localnet: Watched | None = None
    run: Watched | None = None
    try:
        genesis = make_config(
            block_time_seconds=0.3,
            shared_params={
                "num_blocks_per_session": 4,
                "grace_period_end_offset_blocks": 1,
                "claim_window_open_offset_blocks": 1,
                "claim_window_close_offset_blocks": 4,
                "proof_window_open_offset_blocks": 0,
                "proof_window_close_offset_blocks": 4,
            },
            proof_params={"proof_requirement_threshold_upokt": 0},  # every claim is proved
        )
        net = start_localnet(tmp_path, genesis, server.url)
        localnet = net.process
        keys = write_keys_file(tmp_path / "keys.yaml", SUPPLIER)
        miner = {
            "suppliers": [SUPPLIER.address],
            "redis": {"url": server.url},
            "worker": {"block_ms": 100},
            "metrics": {"enabled": False},
            "chain": pocket_chain_block(net, keys, block_time=0.3),
        }
        (tmp_path / "miner.yaml").write_text(yaml.safe_dump(miner))
        run = Watched(["run", "--config", str(tmp_path / "miner.yaml")])
        run.wait_for_line(f"mining supplier supplier={SUPPLIER.address}")

        sessions = asyncio.run(publish_and_wait_for_settlement(server.url))
        assert {s.state for s in sessions} == {SessionState.PROVED}
        assert {s.settlement_outcome for s in sessions} == {"settled_proven"}
        assert all(s.claim_tx_hash for s in sessions)

        run.proc.send_signal(signal.SIGTERM)
        code, _ = run.finish()
        assert code == 0, run.stderr
        assert bytes(SUPPLIER.private.secret).hex() not in run.stderr
        localnet.proc.send_signal(signal.SIGTERM)
        code, _ = localnet.finish()
        assert code == 0, localnet.stderr
    finally:
        for proc in (run, localnet):
            if proc is not None and proc.proc.poll() is None:
                proc.proc.kill()
                proc.proc.wait()
        server.stop()
