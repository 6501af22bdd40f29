"""The localnet's configuration: genesis state, node rules and listening ports (YAML, pydantic).

``relayminer localnet --config FILE`` reads it; ``localnet.example.yaml`` at the repository root
documents every field. Unknown fields are errors, and an invalid value names its field
(``suppliers.0.services: unknown service id 'nope'``). :meth:`LocalnetConfig.sim_config` turns
it into the :class:`~relayminer.chain.sim.config.SimChainConfig` of the simulated chain the
node wraps; the node-only parts (chain id, accounts, fees, ports) stay here.

Every address must be a valid ``pokt1…`` bech32 address: clients derive addresses from keys and
sign for them, so the localnet refuses names a real chain could never hold.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from relayminer.chain.settings import ProofParamsSection, SharedParamsSection
from relayminer.chain.sim.config import ServiceConfig, SimChainConfig, TokenomicsConfig
from relayminer.chain.sim.node.crypto import encode_address, is_address
from relayminer.errors import RelayMinerError
from relayminer.protocol.proof_requirement import ProofParams
from relayminer.protocol.relay_difficulty import BASE_RELAY_DIFFICULTY_TARGET_HASH
from relayminer.protocol.windows import SharedParams

__all__ = [
    "AccountEntry",
    "ActorEntry",
    "LocalnetConfig",
    "LocalnetConfigError",
    "ServiceEntry",
    "load_localnet_config",
    "parse_localnet_config",
]

DENOM = "upokt"


class LocalnetConfigError(RelayMinerError, ValueError):
    """The localnet configuration is invalid; the message names every bad field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _address(value: str) -> str:
    if not is_address(value):
        raise ValueError(f"not a pokt1 bech32 address: {value!r}")
    return value


def default_owner(service_id: str) -> str:
    """A deterministic owner address for a service configured without one."""
    digest = hashlib.sha256(f"relayminer-localnet/service-owner/{service_id}".encode()).digest()
    return encode_address(digest[:20])


class AccountEntry(_Section):
    #: bech32 account address
    address: str
    #: liquid uPOKT at genesis (fees and the proof submission fee are paid from it)
    balance_upokt: int = Field(0, ge=0)

    _check = field_validator("address")(classmethod(lambda cls, v: _address(v)))


class ServiceEntry(_Section):
    id: str = Field(min_length=1, max_length=42, pattern=r"^[a-zA-Z0-9_-]+$")
    name: str = ""
    compute_units_per_relay: int = Field(1, ge=1)
    #: service owner (receives the source-owner share); default: an address derived from the id
    owner_address: str | None = None
    #: hex of the 32-byte relay mining difficulty target (64 x 'f': base difficulty)
    relay_difficulty_target_hex: str = BASE_RELAY_DIFFICULTY_TARGET_HASH.hex()

    @field_validator("owner_address")
    @classmethod
    def _owner(cls, value: str | None) -> str | None:
        return None if value is None else _address(value)

    @field_validator("relay_difficulty_target_hex")
    @classmethod
    def _target(cls, value: str) -> str:
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise ValueError("must be hex") from None
        if len(raw) != 32 or not any(raw):
            raise ValueError("must be 32 bytes (64 hex digits), not all zero")
        return value.lower()


class ActorEntry(_Section):
    """A staked application or supplier (operator address) and its services."""

    address: str
    services: list[str] = Field(min_length=1)

    _check = field_validator("address")(classmethod(lambda cls, v: _address(v)))


class ServiceParamsSection(_Section):
    #: the difficulty EMA target (``pocket.service.Params.target_num_relays``)
    target_num_relays: int = Field(10_000, ge=1)
    add_service_fee_upokt: int = Field(1_000_000_000, ge=0)


class LocalnetConfig(_Section):
    #: the chain id every tx must be signed for (``/status`` ``node_info.network``)
    chain_id: str = Field("pocket", min_length=1, max_length=48)
    #: seconds between blocks
    block_time_seconds: float = Field(1.0, gt=0, le=600)
    #: loopback ports; 0 picks a free port (the ready line says which)
    rpc_port: int = Field(0, ge=0, le=65535)
    grpc_port: int = Field(0, ge=0, le=65535)
    #: minimum gas price in uPOKT per gas unit (decimal text); fees must be >= ceil(gas x price)
    min_gas_price_upokt: Decimal = Field(Decimal("0.000001"), ge=0)
    #: SDK 0.53 unordered transactions (poktroll enables them); off: unordered txs get sdk 37
    unordered_transactions: bool = True
    #: the longest allowed unordered timeout after the block time (SDK default 10 min)
    max_unordered_ttl_seconds: int = Field(600, ge=1)
    #: the most gas a tx may ask for
    max_gas_per_tx: int = Field(100_000_000, ge=1)
    #: seeds the simulated chain (block hashes, mempool drop decisions)
    seed: int = 0
    #: uPOKT staked by every application / supplier at genesis
    application_stake_upokt: int = Field(1_000_000_000_000, ge=0)
    supplier_stake_upokt: int = Field(1_000_000_000_000, ge=0)
    num_suppliers_per_session: int = Field(50, ge=1)
    shared_params: SharedParamsSection = SharedParamsSection()
    proof_params: ProofParamsSection = ProofParamsSection()
    service_params: ServiceParamsSection = ServiceParamsSection()
    accounts: list[AccountEntry] = Field(default_factory=list)
    services: list[ServiceEntry] = Field(min_length=1)
    applications: list[ActorEntry] = Field(default_factory=list)
    suppliers: list[ActorEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> LocalnetConfig:
        service_ids = [s.id for s in self.services]
        if len(set(service_ids)) != len(service_ids):
            raise ValueError("services: a service id is listed twice")
        for group in ("accounts", "applications", "suppliers"):
            entries = getattr(self, group)
            addresses = [e.address for e in entries]
            if len(set(addresses)) != len(addresses):
                raise ValueError(f"{group}: an address is listed twice")
        for group in ("applications", "suppliers"):
            for i, actor in enumerate(getattr(self, group)):
                for sid in actor.services:
                    if sid not in service_ids:
                        raise ValueError(f"{group}.{i}.services: unknown service id {sid!r}")
                if len(set(actor.services)) != len(actor.services):
                    raise ValueError(f"{group}.{i}.services: a service id is listed twice")
        return self

    # --- derived ---------------------------------------------------------------------------

    def genesis_accounts(self) -> list[tuple[str, int]]:
        """(address, balance) of every genesis account, in account-number order: the listed
        accounts, then applications, suppliers and service owners not listed."""
        seen: dict[str, int] = {}
        for entry in self.accounts:
            seen[entry.address] = entry.balance_upokt
        for actor in [*self.applications, *self.suppliers]:
            seen.setdefault(actor.address, 0)
        for svc in self.services:
            seen.setdefault(svc.owner_address or default_owner(svc.id), 0)
        return list(seen.items())

    def sim_config(self) -> SimChainConfig:
        """The simulated chain's configuration (its block time is the node's)."""
        return SimChainConfig(
            block_time_seconds=self.block_time_seconds,
            shared_params=SharedParams(**self.shared_params.model_dump()),
            proof_params=ProofParams(**self.proof_params.model_dump()),
            services={
                s.id: ServiceConfig(
                    compute_units_per_relay=s.compute_units_per_relay,
                    relay_difficulty_target=bytes.fromhex(s.relay_difficulty_target_hex),
                    owner_address=s.owner_address or default_owner(s.id),
                )
                for s in self.services
            },
            applications={a.address: tuple(a.services) for a in self.applications},
            suppliers={s.address: tuple(s.services) for s in self.suppliers},
            num_suppliers_per_session=self.num_suppliers_per_session,
            seed=self.seed,
            tokenomics=TokenomicsConfig(),
            application_stake_upokt=self.application_stake_upokt,
            supplier_stake_upokt=self.supplier_stake_upokt,
            initial_balances={a: b for a, b in self.genesis_accounts() if b},
        )

    def service(self, service_id: str) -> ServiceEntry | None:
        return next((s for s in self.services if s.id == service_id), None)


def _describe(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "<root>"
        lines.append(f"{where}: {e['msg']}")
    return "invalid localnet configuration:\n  " + "\n  ".join(lines)


def parse_localnet_config(doc: Any) -> LocalnetConfig:
    """Validate a configuration document (the parsed YAML)."""
    if not isinstance(doc, dict):
        raise LocalnetConfigError("invalid localnet configuration: the document must be a mapping")
    try:
        config = LocalnetConfig.model_validate(doc)
        config.sim_config()  # the simulated chain checks what the schema cannot
    except ValidationError as err:
        raise LocalnetConfigError(_describe(err)) from None
    except RelayMinerError as err:
        raise LocalnetConfigError(f"invalid localnet configuration: {err}") from None
    return config


def load_localnet_config(path: str | Path) -> LocalnetConfig:
    """Read and validate a YAML localnet configuration file."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise LocalnetConfigError(f"cannot read {path}: {err.strerror}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise LocalnetConfigError(f"{path} is not valid YAML: {err}") from None
    return parse_localnet_config(doc)
