"""``chain:`` configuration block when ``type: pocket`` (pydantic; unknown keys are errors).

Secrets never appear in the config text: the mnemonic comes from an environment variable name
or a file path, private keys from a keys file or a keyring directory.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["KeySources", "KeyringSettings", "MnemonicSettings", "PocketChainSettings"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MnemonicSettings(_Section):
    env: str | None = None  # name of the environment variable holding the phrase
    file: Path | None = None  # or a file holding it
    account: int = Field(default=0, ge=0, lt=2**31)
    count: int = Field(default=1, ge=1, le=1000)  # keys m/44'/118'/account'/0/0..count-1

    @model_validator(mode="after")
    def _one_source(self) -> MnemonicSettings:
        if (self.env is None) == (self.file is None):
            raise ValueError("set exactly one of mnemonic.env or mnemonic.file")
        return self


class KeyringSettings(_Section):
    backend: Literal["test"] = "test"
    dir: Path  # keyring home; keys live in <dir>/keyring-test
    app_name: str = "pocket"
    names: tuple[str, ...] = ()  # empty: every key


class KeySources(_Section):
    keys_file: Path | None = None
    mnemonic: MnemonicSettings | None = None
    keyring: KeyringSettings | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> KeySources:
        if self.keys_file is None and self.mnemonic is None and self.keyring is None:
            raise ValueError("configure at least one of keys_file, mnemonic, keyring")
        return self


class PocketChainSettings(_Section):
    type: Literal["pocket"] = "pocket"
    chain_id: str = Field(default="pocket", min_length=1)  # "pocket-beta" for testnet
    grpc_endpoints: tuple[str, ...] = Field(default=("localhost:9090",), min_length=1)
    grpc_tls: bool = False
    rpc_url: str = "http://localhost:26657"
    query_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    rpc_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    gas_adjustment: Decimal = Field(default=Decimal("1.7"), gt=0)
    gas_price_upokt: Decimal = Field(default=Decimal("0.00001"), ge=0)
    gas_limit: int = Field(default=0, ge=0)  # > 0: fixed, no simulation
    max_fee_upokt: int | None = Field(default=None, ge=0)
    memo: str = Field(default="", max_length=256)
    unordered: bool = True
    unordered_ttl_seconds: float = Field(default=120.0, gt=0, lt=600)
    reconnect_backoff_max_seconds: float = Field(default=15.0, gt=0)
    #: the network's expected block time: sizes the dedup TTL (``deduplication_ttl_blocks``
    #: blocks) and the stale-node warning (no new block for several block times)
    block_time_seconds: float = Field(default=60.0, gt=0, le=3600)
    #: how long ``relayminer run`` keeps retrying an unreachable node at start before it
    #: exits 1 (once running, outages are retried without limit)
    start_timeout_seconds: float = Field(default=60.0, ge=0, le=3600)
    keys: KeySources
