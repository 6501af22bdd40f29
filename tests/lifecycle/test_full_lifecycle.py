"""The whole lifecycle on the simulated chain: many sessions over several session lengths."""

from __future__ import annotations

import pytest

from relayminer.protocol.proof_requirement import ProofParams
from relayminer.sessions.model import SessionState
from tests.conftest import RedisBackend
from tests.lifecycle.support import (
    APP,
    APP2,
    SUP1,
    SUP2,
    SVC,
    SVC2,
    World,
    chain_config,
)


@pytest.mark.parametrize(
    "proof_params",
    [
        ProofParams(proof_requirement_threshold_upokt=0, proof_request_probability=0.0),
        ProofParams(proof_requirement_threshold_upokt=10**12, proof_request_probability=0.5),
    ],
    ids=["always-required", "lottery"],
)
@pytest.mark.parametrize("quiet_blocks", [False, True], ids=["every-pass-full", "run-loop"])
async def test_every_session_with_relays_ends_proved(
    backend: RedisBackend, proof_params: ProofParams, quiet_blocks: bool
) -> None:
    """Also through the run loop's passes (``tick``: quiet blocks read nothing)."""
    world = await World.create(
        backend.client, chain_config(proof_params), quiet_blocks=quiet_blocks
    )
    try:
        # Relays during sessions 1..3 (blocks 1..12) for several (app, service, supplier).
        for _ in range(12):
            h = await world.height() + 1
            await world.relays(SUP1, 3 + h % 4, app=APP, service=SVC)
            await world.relays(SUP1, 2, app=APP, service=SVC2)
            await world.relays(SUP2, 1 + h % 3, app=APP2, service=SVC)
            await world.step()
        await world.run_to(30)  # every window of sessions 1..4 is over (the last settles at 26)
        outcomes: dict[SessionState, int] = {}
        for sup in (SUP1, SUP2):
            for s in await world.sessions(sup):
                assert s.state in (SessionState.PROVED, SessionState.PROBABILISTIC_PROVED), s
                assert s.relay_count == world.published[(sup, s.session_id)]
                outcomes[s.state] = outcomes.get(s.state, 0) + 1
        sessions = len(world.published)
        assert sessions == 12  # 4 sessions (blocks 2..13) x 3 (app, service, supplier)
        assert sum(outcomes.values()) == sessions
        summary = (await world.chain.summary()).as_dict()
        assert summary["claims_settled"] == sessions
        if proof_params.proof_requirement_threshold_upokt == 0:
            assert outcomes == {SessionState.PROVED: sessions}
        else:  # the lottery: some proofs required, some not
            assert set(outcomes) == {SessionState.PROVED, SessionState.PROBABILISTIC_PROVED}
        # CU price is 1 uPOKT: the supplier's share of what its relays earned.
        for sup in (SUP1, SUP2):
            assert await world.chain.balance(sup) > 0
        for sup in (SUP1, SUP2):
            for s in await world.sessions(sup):
                assert s.settlement_outcome == "settled_proven", s
        # Terminal cleanup: no SMST or dedup keys are left behind for proved sessions.
        assert await backend.client.keys("ha:smst:*") == []
        assert await backend.client.keys("ha:miner:dedup:*") == []
        quiet = sum(r.quiet for r in world.reports)
        # 30 blocks x 2 suppliers; blocks with nothing due are quiet once the run loop makes
        # the passes (the settlement outcomes above were recorded in quiet passes too)
        assert (quiet > 0) is quiet_blocks
    finally:
        await world.close()
