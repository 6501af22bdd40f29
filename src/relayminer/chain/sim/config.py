"""Configuration of the simulated chain (:class:`relayminer.chain.sim.chain.SimulatedChain`).

Everything the simulated chain knows about the world is here: shared and proof params, the
services, which applications and suppliers are staked for which services, the tokenomics split
and the mempool drop rate. A config is validated when built; a bad value raises
:class:`SimChainConfigError` naming the field (``services['svc'].compute_units_per_relay`` ...).

``SimulatedChain.init()`` also stores a snapshot in Redis (:meth:`SimChainConfig.to_json`), so
another process can attach to the same chain with ``SimulatedChain.attach(redis)``.

>>> cfg = SimChainConfig(services={"svc": ServiceConfig(compute_units_per_relay=10)},
...                      applications={"pokt1app": ("svc",)}, suppliers={"pokt1sup": ("svc",)})
>>> SimChainConfig.from_json(cfg.to_json()) == cfg
True
>>> SimChainConfig(services={"svc": ServiceConfig()}, applications={"pokt1app": ("nope",)})
Traceback (most recent call last):
...
relayminer.chain.sim.errors.SimChainConfigError: invalid applications['pokt1app']: \
unknown service id 'nope'
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Final

from relayminer.chain.sim.errors import SimChainConfigError
from relayminer.protocol.proof_requirement import ProofParams
from relayminer.protocol.relay_difficulty import BASE_RELAY_DIFFICULTY_TARGET_HASH
from relayminer.protocol.windows import SharedParams

__all__ = [
    "DEFAULT_STAKE_UPOKT",
    "ServiceConfig",
    "SimChainConfig",
    "SimChainConfigError",
    "TokenomicsConfig",
]

DEFAULT_STAKE_UPOKT: Final = 1_000_000_000_000
"""Default stake of every application and supplier (1M POKT)."""

_MAX_UINT64: Final = (1 << 64) - 1
_TARGET_SIZE: Final = 32


def _check_int(name: str, value: object, low: int, high: int = _MAX_UINT64) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SimChainConfigError(name, f"must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise SimChainConfigError(name, f"must be within [{low}, {high}], got {value}")
    return value


def _check_ratio(name: str, value: object, *, allow_zero: bool = True) -> Fraction:
    """A share in [0, 1] as an exact decimal fraction (0.975 is 39/40, not the double)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SimChainConfigError(name, f"must be a number, got {type(value).__name__}")
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise SimChainConfigError(name, f"must be within [0, 1], got {value}")
    if not allow_zero and value == 0:
        raise SimChainConfigError(name, "must be > 0")
    return Fraction(repr(float(value)))


def _check_address(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise SimChainConfigError(name, f"must be a str, got {type(value).__name__}")
    if not value or any(c.isspace() for c in value):
        raise SimChainConfigError(name, f"must be a non-empty string without spaces, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """A service: compute units per relay, relay mining difficulty and source owner.

    Both are constant for the life of the simulated chain (no governance, no difficulty EMA).
    """

    compute_units_per_relay: int = 1
    relay_difficulty_target: bytes = BASE_RELAY_DIFFICULTY_TARGET_HASH
    owner_address: str = "pokt1simserviceowner"

    def validate(self, name: str) -> None:
        _check_int(f"{name}.compute_units_per_relay", self.compute_units_per_relay, 1)
        target = self.relay_difficulty_target
        if not isinstance(target, bytes):
            raise SimChainConfigError(
                f"{name}.relay_difficulty_target", f"must be bytes, got {type(target).__name__}"
            )
        if len(target) != _TARGET_SIZE:
            raise SimChainConfigError(
                f"{name}.relay_difficulty_target", f"must be 32 bytes, got {len(target)}"
            )
        if not any(target):
            raise SimChainConfigError(
                f"{name}.relay_difficulty_target", "must not be all zero (no relay could be mined)"
            )
        _check_address(f"{name}.owner_address", self.owner_address)


@dataclass(frozen=True, slots=True)
class TokenomicsConfig:
    """Mint=burn token logic (spec lifecycle.md §6.3): shares of the minted amount.

    Shares are exact decimals; they must sum to 1. The DAO receives the rounding remainder.
    """

    mint_ratio: float = 0.975
    supplier_share: float = 0.79
    proposer_share: float = 0.14
    dao_share: float = 0.045
    source_owner_share: float = 0.025
    application_share: float = 0.0
    proposer_address: str = "pokt1simproposer"
    dao_address: str = "pokt1simdao"

    def validate(self, name: str) -> None:
        _check_ratio(f"{name}.mint_ratio", self.mint_ratio, allow_zero=False)
        total = sum(
            (
                _check_ratio(f"{name}.{share}", getattr(self, share))
                for share in (
                    "supplier_share",
                    "proposer_share",
                    "dao_share",
                    "source_owner_share",
                    "application_share",
                )
            ),
            Fraction(0),
        )
        if total != 1:
            raise SimChainConfigError(
                f"{name}.supplier_share", f"the five shares must sum to 1, got {float(total)}"
            )
        _check_address(f"{name}.proposer_address", self.proposer_address)
        _check_address(f"{name}.dao_address", self.dao_address)

    def ratio(self, name: str) -> Fraction:
        """An exact share (``ratio("supplier_share")``)."""
        return Fraction(repr(float(getattr(self, name))))


def _freeze_membership(name: str, value: object, services: Mapping[str, ServiceConfig]) -> None:
    if not isinstance(value, Mapping):
        raise SimChainConfigError(name, f"must be a mapping, got {type(value).__name__}")
    for address, service_ids in value.items():
        entry = f"{name}[{address!r}]"
        _check_address(entry, address)
        if isinstance(service_ids, str) or not isinstance(service_ids, tuple | list):
            raise SimChainConfigError(entry, "must be a sequence of service ids")
        if not service_ids:
            raise SimChainConfigError(entry, "must list at least one service id")
        for sid in service_ids:
            if sid not in services:
                raise SimChainConfigError(entry, f"unknown service id {sid!r}")
        if len(set(service_ids)) != len(service_ids):
            raise SimChainConfigError(entry, "lists a service id twice")


@dataclass(frozen=True)
class SimChainConfig:
    """Everything the simulated chain needs; validated on construction.

    - ``services``: service id → :class:`ServiceConfig`;
    - ``applications`` / ``suppliers``: address → service ids it is staked for (supplier keys
      are operator addresses; the operator is also the owner receiving rewards);
    - ``drop_rate``: share of CheckTx-accepted txs silently evicted from the mempool (the
      broadcast still answers code 0), decided deterministically from ``seed``;
    - ``initial_balances``: liquid uPOKT per address at genesis (proof fees are paid from it).
    """

    block_time_seconds: float = 1.0
    shared_params: SharedParams = field(default_factory=SharedParams)
    proof_params: ProofParams = field(default_factory=ProofParams)
    services: Mapping[str, ServiceConfig] = field(default_factory=dict)
    applications: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    suppliers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    num_suppliers_per_session: int = 50
    drop_rate: float = 0.0
    seed: int = 0
    tokenomics: TokenomicsConfig = field(default_factory=TokenomicsConfig)
    application_stake_upokt: int = DEFAULT_STAKE_UPOKT
    supplier_stake_upokt: int = DEFAULT_STAKE_UPOKT
    initial_balances: Mapping[str, int] = field(default_factory=dict)
    #: (service id, session id) -> the session's suppliers, memoised by ``session_suppliers``
    #: (ranking every staked supplier costs a hash each; a 1,000-supplier demo asks per claim)
    session_suppliers_memo: dict[tuple[str, str], tuple[str, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        bt = self.block_time_seconds
        if isinstance(bt, bool) or not isinstance(bt, int | float):
            raise SimChainConfigError("block_time_seconds", "must be a number")
        if math.isnan(bt) or math.isinf(bt) or bt <= 0:
            raise SimChainConfigError("block_time_seconds", f"must be > 0, got {bt}")
        if not isinstance(self.shared_params, SharedParams):
            raise SimChainConfigError("shared_params", "must be a SharedParams")
        if not isinstance(self.proof_params, ProofParams):
            raise SimChainConfigError("proof_params", "must be a ProofParams")
        if not isinstance(self.tokenomics, TokenomicsConfig):
            raise SimChainConfigError("tokenomics", "must be a TokenomicsConfig")
        self.tokenomics.validate("tokenomics")
        if not isinstance(self.services, Mapping):
            raise SimChainConfigError("services", "must be a mapping of service id to config")
        for sid, svc in self.services.items():
            if not isinstance(sid, str) or not sid:
                raise SimChainConfigError("services", f"invalid service id {sid!r}")
            if not isinstance(svc, ServiceConfig):
                raise SimChainConfigError(f"services[{sid!r}]", "must be a ServiceConfig")
            svc.validate(f"services[{sid!r}]")
        _freeze_membership("applications", self.applications, self.services)
        _freeze_membership("suppliers", self.suppliers, self.services)
        _check_int("num_suppliers_per_session", self.num_suppliers_per_session, 1)
        dr = self.drop_rate
        if isinstance(dr, bool) or not isinstance(dr, int | float) or not 0.0 <= dr <= 1.0:
            raise SimChainConfigError("drop_rate", f"must be within [0, 1], got {dr!r}")
        _check_int("seed", self.seed, -(1 << 63), _MAX_UINT64)
        _check_int("application_stake_upokt", self.application_stake_upokt, 0)
        _check_int("supplier_stake_upokt", self.supplier_stake_upokt, 0)
        if not isinstance(self.initial_balances, Mapping):
            raise SimChainConfigError("initial_balances", "must be a mapping")
        for address, amount in self.initial_balances.items():
            _check_address(f"initial_balances[{address!r}]", address)
            _check_int(f"initial_balances[{address!r}]", amount, 0)
        # Normalise to plain dicts of tuples (callers may pass lists).
        object.__setattr__(self, "services", dict(self.services))
        object.__setattr__(
            self, "applications", {a: tuple(s) for a, s in self.applications.items()}
        )
        object.__setattr__(self, "suppliers", {a: tuple(s) for a, s in self.suppliers.items()})
        object.__setattr__(self, "initial_balances", dict(self.initial_balances))

    # --- snapshot -------------------------------------------------------------------------

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): the snapshot ``init()`` stores in Redis."""
        doc: dict[str, Any] = {
            "block_time_seconds": self.block_time_seconds,
            "shared_params": dataclasses.asdict(self.shared_params),
            "proof_params": dataclasses.asdict(self.proof_params),
            "services": {
                sid: {
                    "compute_units_per_relay": svc.compute_units_per_relay,
                    "relay_difficulty_target": svc.relay_difficulty_target.hex(),
                    "owner_address": svc.owner_address,
                }
                for sid, svc in self.services.items()
            },
            "applications": {a: list(s) for a, s in self.applications.items()},
            "suppliers": {a: list(s) for a, s in self.suppliers.items()},
            "num_suppliers_per_session": self.num_suppliers_per_session,
            "drop_rate": self.drop_rate,
            "seed": self.seed,
            "tokenomics": dataclasses.asdict(self.tokenomics),
            "application_stake_upokt": self.application_stake_upokt,
            "supplier_stake_upokt": self.supplier_stake_upokt,
            "initial_balances": dict(self.initial_balances),
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> SimChainConfig:
        """Inverse of :meth:`to_json` (validates again)."""
        try:
            doc = json.loads(text)
            return cls(
                block_time_seconds=doc["block_time_seconds"],
                shared_params=SharedParams(**doc["shared_params"]),
                proof_params=ProofParams(**doc["proof_params"]),
                services={
                    sid: ServiceConfig(
                        compute_units_per_relay=svc["compute_units_per_relay"],
                        relay_difficulty_target=bytes.fromhex(svc["relay_difficulty_target"]),
                        owner_address=svc["owner_address"],
                    )
                    for sid, svc in doc["services"].items()
                },
                applications={a: tuple(s) for a, s in doc["applications"].items()},
                suppliers={a: tuple(s) for a, s in doc["suppliers"].items()},
                num_suppliers_per_session=doc["num_suppliers_per_session"],
                drop_rate=doc["drop_rate"],
                seed=doc["seed"],
                tokenomics=TokenomicsConfig(**doc["tokenomics"]),
                application_stake_upokt=doc["application_stake_upokt"],
                supplier_stake_upokt=doc["supplier_stake_upokt"],
                initial_balances=doc["initial_balances"],
            )
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, SimChainConfigError):
                raise
            raise SimChainConfigError("snapshot", f"cannot decode config snapshot: {err}") from err
