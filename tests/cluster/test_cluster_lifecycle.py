"""The lifecycle on a Redis Cluster: the simulated chain, relay workers and lifecycle managers
of tests/lifecycle all on one cluster client (suppliers on their own slots, the chain in its
own). A representative subset of tests/lifecycle/test_faults.py runs here unchanged, on the
cluster backend below; the full lifecycle is re-stated with a SCAN of every master where the
single-server test uses KEYS (which a cluster client sends to one node only)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio.cluster import RedisCluster

from relayminer.keys import KeyBuilder
from relayminer.sessions.model import SessionState
from tests.cluster.cluster_support import ClusterGroup
from tests.conftest import RedisBackend
from tests.lifecycle import test_faults
from tests.lifecycle.support import APP, APP2, SUP1, SUP2, SVC, SVC2, World, chain_config


class ClusterBackend(RedisBackend):
    """The shared cluster as a test backend (``new_client`` gives more cluster clients)."""

    def __init__(self, group: ClusterGroup, client: RedisCluster) -> None:
        super().__init__("cluster", group.url, None, client)  # type: ignore[arg-type]
        self.group = group

    def new_client(self, max_connections: int = 64) -> RedisCluster:  # type: ignore[override]
        client = self.group.client(max_connections)
        self._extra.append(client)  # type: ignore[arg-type]
        return client


@pytest.fixture
async def backend(
    redis_cluster: ClusterGroup, cluster_client: RedisCluster
) -> AsyncIterator[RedisBackend]:
    b = ClusterBackend(redis_cluster, cluster_client)
    try:
        yield b
    finally:
        for c in b._extra:
            await c.aclose()


# The same tests as tests/lifecycle/test_faults.py, collected again here on the cluster backend.
test_dropped_claim_is_resent_once_and_lands = (
    test_faults.test_dropped_claim_is_resent_once_and_lands
)
test_dropped_proof_is_resent_and_validated = test_faults.test_dropped_proof_is_resent_and_validated
test_restart_between_claiming_and_broadcast_still_proves = (
    test_faults.test_restart_between_claiming_and_broadcast_still_proves
)
test_chain_outage_during_the_claim_window_is_re_driven = (
    test_faults.test_chain_outage_during_the_claim_window_is_re_driven
)
test_claim_tx_error_healed_by_the_reconciler_is_proved = (
    test_faults.test_claim_tx_error_healed_by_the_reconciler_is_proved
)


async def test_every_session_ends_proved_and_leaves_nothing_behind(
    backend: RedisBackend,
) -> None:
    cluster = backend.client
    world = await World.create(cluster, chain_config())
    try:
        for _ in range(8):
            h = await world.height() + 1
            await world.relays(SUP1, 3 + h % 4, app=APP, service=SVC)
            await world.relays(SUP1, 2, app=APP, service=SVC2)
            await world.relays(SUP2, 1 + h % 3, app=APP2, service=SVC)
            await world.step()
        await world.run_to(22)  # every window of sessions 1..3 is over
        for sup in (SUP1, SUP2):
            sessions = await world.sessions(sup)
            assert sessions
            for s in sessions:
                assert s.state is SessionState.PROVED, s
                assert s.relay_count == world.published[(sup, s.session_id)]
                assert s.settlement_outcome == "settled_proven", s
            assert await world.chain.balance(sup) > 0
        assert (await world.chain.summary()).as_dict()["claims_settled"] == len(world.published)
        kb = KeyBuilder.cluster()
        left = [k async for k in cluster.scan_iter(match="ha:smst:*")]
        left += [k async for k in cluster.scan_iter(match=kb.miner_dedup_prefix() + ":*")]
        left += [k async for k in cluster.scan_iter(match="ha:miner:rebroadcast:*")]
        assert left == []
        # the chain's keys share one slot; every supplier key sits in its stream's slot
        chain_keys = [k async for k in cluster.scan_iter(match="*sim:chain*")]
        assert chain_keys and all(k.startswith(b"{ha:sim:chain}:") for k in chain_keys)
        for sup in (SUP1, SUP2):
            slot = cluster.keyslot(kb.stream_key(sup))
            assert cluster.keyslot(kb.miner_sessions_index_key(sup)) == slot
    finally:
        await world.close()
