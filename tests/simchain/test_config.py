"""SimChainConfig validation names the bad field; the snapshot round-trips."""

from __future__ import annotations

from typing import Any

import pytest

from relayminer.chain.sim.config import ServiceConfig, SimChainConfig, TokenomicsConfig
from relayminer.chain.sim.errors import SimChainConfigError
from relayminer.errors import RelayMinerError
from tests.simchain.support import make_config

SVC = {"svc": ServiceConfig()}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"block_time_seconds": 0}, "block_time_seconds"),
        ({"block_time_seconds": float("nan")}, "block_time_seconds"),
        ({"drop_rate": 1.5}, "drop_rate"),
        ({"drop_rate": -0.1}, "drop_rate"),
        ({"num_suppliers_per_session": 0}, "num_suppliers_per_session"),
        ({"services": {"svc": ServiceConfig(compute_units_per_relay=0)}},
         "services['svc'].compute_units_per_relay"),
        ({"services": {"svc": ServiceConfig(relay_difficulty_target=b"\xff" * 31)}},
         "services['svc'].relay_difficulty_target"),
        ({"services": {"svc": ServiceConfig(relay_difficulty_target=bytes(32))}},
         "services['svc'].relay_difficulty_target"),
        ({"services": SVC, "suppliers": {"pokt1sup": ("other",)}}, "suppliers['pokt1sup']"),
        ({"services": SVC, "suppliers": {"pokt1sup": ()}}, "suppliers['pokt1sup']"),
        ({"services": SVC, "suppliers": {"pokt1sup": "svc"}}, "suppliers['pokt1sup']"),
        ({"services": SVC, "applications": {"": ("svc",)}}, "applications['']"),
        ({"services": SVC, "applications": {"pokt1app": ("svc", "svc")}},
         "applications['pokt1app']"),
        ({"tokenomics": TokenomicsConfig(supplier_share=0.8)}, "tokenomics.supplier_share"),
        ({"tokenomics": TokenomicsConfig(mint_ratio=0.0)}, "tokenomics.mint_ratio"),
        ({"tokenomics": TokenomicsConfig(dao_share=1.2)}, "tokenomics.dao_share"),
        ({"initial_balances": {"pokt1x": -1}}, "initial_balances['pokt1x']"),
        ({"supplier_stake_upokt": -5}, "supplier_stake_upokt"),
        ({"seed": 1.5}, "seed"),
    ],
)  # fmt: skip
def test_invalid_fields_are_named(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(SimChainConfigError) as info:
        SimChainConfig(**kwargs)
    assert info.value.argument == field
    assert isinstance(info.value, RelayMinerError) and isinstance(info.value, ValueError)


def test_snapshot_round_trips() -> None:
    cfg = make_config(drop_rate=0.25, initial_balances={"pokt1sup1": 9})
    again = SimChainConfig.from_json(cfg.to_json())
    assert again == cfg
    assert again.to_json() == cfg.to_json()


def test_bad_snapshot_is_a_config_error() -> None:
    with pytest.raises(SimChainConfigError, match="snapshot"):
        SimChainConfig.from_json("{}")


def test_membership_lists_are_normalised_to_tuples() -> None:
    cfg = SimChainConfig(services=SVC, suppliers={"pokt1sup": ["svc"]})  # type: ignore[dict-item]
    assert cfg.suppliers == {"pokt1sup": ("svc",)}
