"""The one place that turns the ``chain:`` settings into a running :class:`Chain`.

The runtime asks :func:`build_chain` for a chain and gets a :class:`ChainConnection`: the
``Chain`` the lifecycle talks to, plus an optional *driver*, a background task the miner runs
beside its pipelines (for the simulated chain: block production, one producer at a time under
its lease). Builders are keyed by ``chain.type`` and import their implementation lazily, so
nothing outside ``chain/sim``, the demo and the CLI imports the simulator
(``tests/test_import_graph.py`` checks it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from relayminer.chain.base import Chain
from relayminer.chain.settings import ChainSettings, SimulatedChainSettings
from relayminer.errors import RelayMinerError
from relayminer.keys import KeyBuilder

__all__ = ["ChainConnection", "ChainSettingsError", "Driver", "build_chain", "check_chain_settings"]

Driver = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class ChainSettingsError(RelayMinerError, ValueError):
    """The chain settings passed the schema but the chain cannot be built from them."""


@dataclass
class ChainConnection:
    """A built chain: what the lifecycle uses, what the miner runs beside it, how to close."""

    chain: Chain
    #: run until the event is set (None: nothing to run)
    driver: Driver | None
    close: Callable[[], Awaitable[None]]


async def _simulated(
    settings: SimulatedChainSettings, redis: Redis, keys: KeyBuilder, suppliers: Sequence[str]
) -> ChainConnection:
    from relayminer.chain.sim.setup import open_simulated_chain

    chain = await open_simulated_chain(settings, redis, keys=keys, suppliers=suppliers)
    return ChainConnection(chain, chain.run if settings.produce_blocks else None, chain.close)


def _check_simulated(settings: SimulatedChainSettings, suppliers: Sequence[str]) -> None:
    from relayminer.chain.sim.setup import sim_chain_config

    sim_chain_config(settings, suppliers)


_Builder = Callable[[ChainSettings, Redis, KeyBuilder, Sequence[str]], Awaitable[ChainConnection]]
_Checker = Callable[[ChainSettings, Sequence[str]], None]

#: ``chain.type`` -> (builder, settings check). Add one entry per chain type.
_CHAINS: dict[str, tuple[_Builder, _Checker]] = {
    "simulated": (_simulated, _check_simulated),
}


def check_chain_settings(settings: ChainSettings, suppliers: Sequence[str]) -> None:
    """Validate what the schema cannot (e.g. the simulator's own rules); raises
    :class:`ChainSettingsError` naming the problem."""
    _builder, check = _CHAINS[settings.type]
    try:
        check(settings, suppliers)
    except RelayMinerError as err:
        raise ChainSettingsError(f"chain: {err}") from None


async def build_chain(
    settings: ChainSettings,
    redis: Redis,
    *,
    keys: KeyBuilder | None = None,
    suppliers: Sequence[str] = (),
) -> ChainConnection:
    """The chain of ``settings.type``; ``suppliers`` are the miner's (a simulated chain stakes
    them when its settings name none)."""
    builder, _check = _CHAINS[settings.type]
    return await builder(settings, redis, keys or KeyBuilder(), suppliers)
