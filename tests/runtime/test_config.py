"""Operator configuration: the documented example loads, bad values name the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from relayminer.chain.sim.setup import sim_chain_config
from relayminer.config import ConfigError, MinerConfig, load_config, parse_config
from relayminer.lifecycle.config import LifecycleConfig
from relayminer.pipeline.worker import WorkerConfig

EXAMPLE = Path(__file__).resolve().parents[2] / "miner.example.yaml"


def test_example_config_is_valid_and_documented() -> None:
    config = load_config(EXAMPLE)
    assert config.suppliers == ["pokt1supplieralpha", "pokt1supplierbeta"]
    assert config.redis.url is None  # embedded by default
    assert config.worker.batch_size == 500 and config.leases.ttl_seconds == 15
    assert config.redis.allow_eviction is False
    chain = sim_chain_config(config.chain, config.suppliers)
    assert set(chain.suppliers) == set(config.suppliers)
    assert chain.services["anvil"].compute_units_per_relay == 10
    text = EXAMPLE.read_text()

    # Every field of the schema appears in the example (documented field by field).
    def fields(model: type[MinerConfig] | object, prefix: str = "") -> list[str]:
        out = []
        for name, info in model.model_fields.items():  # type: ignore[attr-defined]
            out.append(name)
            sub = info.annotation
            if isinstance(sub, type) and hasattr(sub, "model_fields"):
                out += fields(sub)
        return out

    for name in fields(MinerConfig):
        assert f"{name}:" in text, name


def test_minimal_config_gets_defaults() -> None:
    config = parse_config({"suppliers": ["pokt1a"]})
    assert config.session_ttl_seconds == 7200
    assert config.dedup_ttl_seconds == 240  # 240 blocks x 1 s
    assert sim_chain_config(config.chain, config.suppliers).suppliers == {"pokt1a": ("anvil",)}


def test_each_default_is_written_once() -> None:
    """The operator's sections take their defaults from the components themselves."""
    config = parse_config({"suppliers": ["pokt1a"]})
    worker = WorkerConfig()
    assert config.worker.model_dump() == {
        "batch_size": worker.batch_size,
        "block_ms": worker.block_ms,
        "claim_idle_ms": worker.claim_idle_ms,
        "max_retries": worker.max_retries,
    }
    assert config.lifecycle == LifecycleConfig()  # the component's model is the section


def test_chain_type_is_a_discriminated_union() -> None:
    config = parse_config({"suppliers": ["pokt1a"], "chain": {"type": "simulated"}})
    assert config.chain.type == "simulated"
    with pytest.raises(ConfigError, match="chain: Input tag 'pocket-nope'"):
        parse_config({"suppliers": ["pokt1a"], "chain": {"type": "pocket-nope"}})


@pytest.mark.parametrize(
    ("doc", "field", "reason"),
    [
        ({}, "suppliers", "Field required"),
        ({"suppliers": []}, "suppliers", "at least 1"),
        ({"suppliers": ["a", "a"]}, "suppliers", "unique"),
        ({"suppliers": ["a"], "worker": {"batch_size": 0}}, "worker.batch_size", "greater than"),
        ({"suppliers": ["a"], "worker": {"batch_size": 9000}}, "worker.batch_size", "less than"),
        ({"suppliers": ["a"], "redis": {"url": "http://x"}}, "redis.url", "redis://"),
        ({"suppliers": ["a"], "leases": {"ttl_seconds": 4, "renew_seconds": 3}}, "leases", "half"),
        (
            {"suppliers": ["a"], "chain": {"block_time_seconds": 0}},
            "chain.block_time_seconds",
            "greater than",
        ),
        (
            {
                "suppliers": ["a"],
                "chain": {"services": {"s": {"relay_difficulty_target_hex": "ff"}}},
            },
            "chain.services.s.relay_difficulty_target_hex",
            "32 bytes",
        ),
        ({"suppliers": ["a"], "wokrer": {}}, "wokrer", "Extra inputs are not permitted"),
        ({"suppliers": ["a"], "logging": {"level": "LOUD"}}, "logging.level", "Input should be"),
        (
            {"suppliers": ["a"], "lifecycle": {"max_submit_attempts": 0}},
            "lifecycle.max_submit_attempts",
            "greater than",
        ),
        (
            {"suppliers": ["a"], "lifecycle": {"max_rebroadcasts": 1.5}},
            "lifecycle.max_rebroadcasts",
            "valid integer",
        ),
    ],
)
def test_invalid_values_name_the_field_and_the_reason(
    doc: dict[str, object], field: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(doc)
    message = str(info.value)
    assert f"{field}:" in message and reason in message, message


def test_cross_references_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump({"suppliers": ["a"], "chain": {"applications": {"pokt1app": ["nope"]}}})
    )
    with pytest.raises(ConfigError, match="names unknown service id"):
        load_config(path)


@pytest.mark.parametrize("content", ["suppliers: [a\n", "- just\n- a list\n"])
def test_unparseable_documents(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_run_with_invalid_config_exits_2_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "miner.yaml"
    path.write_text(yaml.safe_dump({"suppliers": ["pokt1a"], "worker": {"max_retries": -1}}))
    proc = subprocess.run(
        [sys.executable, "-m", "relayminer", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "worker.max_retries: Input should be greater than or equal to 0" in proc.stderr
