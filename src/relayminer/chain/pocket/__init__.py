"""Pocket Network (Shannon) chain client: keys, tx signing, gRPC queries, CometBFT blocks.

:func:`build_pocket_chain` turns a :class:`PocketChainSettings` into a :class:`PocketChain`;
:func:`load_keys` reads every configured key source (keys file re-read when it changes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from relayminer.chain.pocket.broadcaster import Broadcaster, FeePolicy
from relayminer.chain.pocket.chain import ChainIdMismatchError, PocketChain, UnknownServiceError
from relayminer.chain.pocket.cometbft import CometClient
from relayminer.chain.pocket.grpc_client import GrpcQueryClient
from relayminer.chain.pocket.keyfiles import KeysFile, KeySourceError, mnemonic_keys, read_secret
from relayminer.chain.pocket.keyring import load_keyring_test
from relayminer.chain.pocket.keys import PocketKey
from relayminer.chain.pocket.keyset import KeySet, MissingSupplierKeyError, check_supplier_keys
from relayminer.chain.pocket.queries import PocketQueries
from relayminer.chain.pocket.settings import PocketChainSettings
from relayminer.chain.pocket.tx import sign_tx, tx_hash

__all__ = [
    "ChainIdMismatchError",
    "KeySet",
    "KeySourceError",
    "MissingSupplierKeyError",
    "PocketChain",
    "PocketChainSettings",
    "PocketKey",
    "UnknownServiceError",
    "build_pocket_chain",
    "check_supplier_keys",
    "load_keys",
    "sign_tx",
    "tx_hash",
]


def load_keys(settings: PocketChainSettings) -> Callable[[], Mapping[str, PocketKey]]:
    """A function returning the current keys: mnemonic and keyring read once, now; the keys
    file re-read whenever it changes (a bad reload keeps the previous keys and logs)."""
    sources = settings.keys
    fixed = KeySet()
    if sources.mnemonic is not None:
        phrase = read_secret(env=sources.mnemonic.env, file=sources.mnemonic.file, what="mnemonic")
        fixed.add(
            mnemonic_keys(phrase, account=sources.mnemonic.account, count=sources.mnemonic.count)
        )
    if sources.keyring is not None:
        fixed.add(load_keyring_test(sources.keyring.dir, sources.keyring.names))
    keys_file = None if sources.keys_file is None else KeysFile(sources.keys_file)
    if keys_file is not None:
        keys_file.current()  # fail at start on a bad file

    def current() -> Mapping[str, PocketKey]:
        if keys_file is None:
            return fixed
        merged = KeySet(keys_file.current())
        merged.add(fixed.values())
        return merged

    return current


def build_pocket_chain(
    settings: PocketChainSettings,
    keys: Callable[[], Mapping[str, PocketKey]] | None = None,
) -> PocketChain:
    """A :class:`PocketChain` for ``settings`` (call ``await chain.start()`` before use)."""
    client = GrpcQueryClient(
        settings.grpc_endpoints, timeout=settings.query_timeout_seconds, tls=settings.grpc_tls
    )
    fees = FeePolicy(
        gas_adjustment=settings.gas_adjustment,
        gas_price_upokt=settings.gas_price_upokt,
        max_fee_upokt=settings.max_fee_upokt,
        fixed_gas_limit=settings.gas_limit,
    )
    return PocketChain(
        chain_id=settings.chain_id,
        queries=PocketQueries(client),
        comet=CometClient(
            settings.rpc_url,
            timeout=settings.rpc_timeout_seconds,
            backoff_max=settings.reconnect_backoff_max_seconds,
        ),
        broadcaster=Broadcaster(
            client,
            chain_id=settings.chain_id,
            fees=fees,
            memo=settings.memo,
            unordered=settings.unordered,
            ttl_seconds=settings.unordered_ttl_seconds,
        ),
        keys=keys if keys is not None else load_keys(settings),
    )
