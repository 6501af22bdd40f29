"""The one place that turns the ``chain:`` settings into a running :class:`Chain`.

The runtime asks :func:`build_chain` for a chain and gets a :class:`ChainConnection`: the
``Chain`` the lifecycle talks to, plus an optional *driver*, a background task the miner runs
beside its pipelines (for the simulated chain: block production, one producer at a time under
its lease). Builders are keyed by ``chain.type`` and import their implementation lazily, so
nothing outside ``chain/sim``, the demo and the CLI imports the simulator
(``tests/test_import_graph.py`` checks it).

Start-up failures of ``chain.type: pocket`` (docs/pocket-chain.md, "Start-up"):

- a configured supplier without a signing key, a bad key source, or a node serving another
  network than ``chain_id`` raise :class:`ChainSettingsError` (the CLI exits 2: retrying
  cannot help);
- an unreachable node is retried with backoff for ``start_timeout_seconds``, then
  :class:`ChainStartError` (a :class:`ChainUnavailableError`; the CLI exits 1 and a
  supervisor restarts it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from relayminer.chain.base import Chain, ChainUnavailableError
from relayminer.chain.settings import ChainSettings, PocketChainSettings, SimulatedChainSettings
from relayminer.errors import RelayMinerError
from relayminer.keys import KeyBuilder

if TYPE_CHECKING:
    from relayminer.chain.pocket import PocketChain, PocketKey

__all__ = [
    "ChainConnection",
    "ChainSettingsError",
    "ChainStartError",
    "Driver",
    "build_chain",
    "check_chain_settings",
]

log = logging.getLogger(__name__)

Driver = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class ChainSettingsError(RelayMinerError, ValueError):
    """The chain settings passed the schema but the chain cannot be built from them."""


class ChainStartError(ChainUnavailableError):
    """The node did not answer within the start-up deadline."""


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


async def _pocket(
    settings: PocketChainSettings, _redis: Redis, _keys: KeyBuilder, suppliers: Sequence[str]
) -> ChainConnection:
    from relayminer.chain.pocket import ChainIdMismatchError, build_pocket_chain

    chain = build_pocket_chain(settings, _pocket_keys(settings, suppliers))
    try:
        await _start_pocket(chain, settings)
    except ChainIdMismatchError as err:
        await chain.close()
        raise ChainSettingsError(f"chain.chain_id: {err}") from None
    except BaseException:
        await chain.close()
        raise
    from relayminer.chain.pocket.health import NodeHealth

    health = NodeHealth(chain, suppliers, block_time_seconds=settings.block_time_seconds)
    return ChainConnection(chain, health.run, chain.close)


async def _start_pocket(chain: PocketChain, settings: PocketChainSettings) -> None:
    """``chain.start()`` and one gRPC query, retried with backoff (doubling from 0.5 s to
    ``reconnect_backoff_max_seconds``) until ``start_timeout_seconds`` passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.start_timeout_seconds
    delay = 0.5
    while True:
        try:
            await chain.start()
            await chain.shared_params()  # the gRPC endpoints answer too
            return
        except ChainUnavailableError as err:
            left = deadline - loop.time()
            if left <= 0:
                raise ChainStartError(
                    f"the Pocket node did not answer within {settings.start_timeout_seconds:g}"
                    f" s ({err}); check chain.rpc_url and chain.grpc_endpoints"
                ) from None
            log.warning(
                "Pocket node unreachable at start, retrying",
                extra={"error": str(err), "retry_in_seconds": round(min(delay, left), 2)},
            )
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, settings.reconnect_backoff_max_seconds)


def _pocket_keys(
    settings: PocketChainSettings, suppliers: Sequence[str]
) -> Callable[[], Mapping[str, PocketKey]]:
    """The key source, after checking every supplier has a key (errors name the supplier or
    the source's line, never key material)."""
    from relayminer.chain.pocket import check_supplier_keys, load_keys

    try:
        keys = load_keys(settings)
        check_supplier_keys(suppliers, keys())
    except RelayMinerError as err:
        raise ChainSettingsError(f"chain.keys: {err}") from None
    return keys


def _check_pocket(settings: PocketChainSettings, suppliers: Sequence[str]) -> None:
    """The keys are read at configuration time, so a missing one is a configuration error."""
    _pocket_keys(settings, suppliers)


_Builder = Callable[[Any, Redis, KeyBuilder, Sequence[str]], Awaitable[ChainConnection]]
_Checker = Callable[[Any, Sequence[str]], None]

#: ``chain.type`` -> (builder, settings check). Add one entry per chain type.
_CHAINS: dict[str, tuple[_Builder, _Checker]] = {
    "simulated": (_simulated, _check_simulated),
    "pocket": (_pocket, _check_pocket),
}


def check_chain_settings(settings: ChainSettings, suppliers: Sequence[str]) -> None:
    """Validate what the schema cannot (e.g. the simulator's own rules); raises
    :class:`ChainSettingsError` naming the problem."""
    _builder, check = _CHAINS[settings.type]
    try:
        check(settings, suppliers)
    except ChainSettingsError:
        raise
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
    return await builder(settings, redis, keys or KeyBuilder.for_client(redis), suppliers)
