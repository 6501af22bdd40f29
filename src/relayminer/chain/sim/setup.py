"""The simulated chain from the operator's ``chain:`` settings (``chain.type: simulated``)."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from relayminer.chain.settings import SimulatedChainSettings
from relayminer.chain.sim.chain import SimulatedChain
from relayminer.chain.sim.config import ServiceConfig, SimChainConfig
from relayminer.keys import KeyBuilder

__all__ = ["open_simulated_chain", "sim_chain_config"]


def sim_chain_config(
    settings: SimulatedChainSettings, miner_suppliers: Sequence[str]
) -> SimChainConfig:
    """The :class:`SimChainConfig` of ``settings``; the miner's suppliers are staked on every
    service when ``settings.suppliers`` is empty. Raises ``SimChainConfigError``."""
    suppliers = settings.suppliers or {s: list(settings.services) for s in miner_suppliers}
    return SimChainConfig(
        block_time_seconds=settings.block_time_seconds,
        shared_params=settings.shared_params.params(),
        proof_params=settings.proof_params.params(),
        services={
            sid: ServiceConfig(
                compute_units_per_relay=svc.compute_units_per_relay,
                relay_difficulty_target=bytes.fromhex(svc.relay_difficulty_target_hex),
            )
            for sid, svc in settings.services.items()
        },
        applications={a: tuple(s) for a, s in settings.applications.items()},
        suppliers={s: tuple(v) for s, v in suppliers.items()},
        drop_rate=settings.drop_rate,
        seed=settings.seed,
    )


async def open_simulated_chain(
    settings: SimulatedChainSettings,
    redis: Redis,
    *,
    keys: KeyBuilder,
    suppliers: Sequence[str],
) -> SimulatedChain:
    """The simulated chain in Redis: created at genesis by the first replica, attached by the
    others (a different configuration than the stored one is an error)."""
    chain = SimulatedChain(redis, sim_chain_config(settings, suppliers), keys=keys)
    await chain.init()
    return chain
