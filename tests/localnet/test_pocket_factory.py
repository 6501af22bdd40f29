"""``chain.type: pocket`` through the chain factory and ``relayminer run``: keys checked against
the suppliers, the node's network checked, an unreachable node retried then refused, and a
configuration error exiting 2 in one line without key material."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from relayminer.chain.factory import (
    ChainSettingsError,
    ChainStartError,
    build_chain,
    check_chain_settings,
)
from relayminer.chain.pocket import PocketChain, PocketChainSettings
from relayminer.chain.sim.node.node import LocalNode
from relayminer.cli import main
from relayminer.config import ConfigError, load_config, parse_config
from tests.conftest import RedisBackend
from tests.localnet.support import SUPPLIER, SUPPLIER2

SUPPLIER_HEX = bytes(SUPPLIER.private.secret).hex()


def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.yaml"
    path.write_text(f'keys:\n  - "{SUPPLIER_HEX}"\n')
    return path


def chain_doc(tmp_path: Path, node: LocalNode | None = None, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": "pocket",
        "chain_id": "pocket",
        "gas_price_upokt": "0.01",
        "keys": {"keys_file": str(keys_file(tmp_path))},
    }
    if node is not None:
        assert node.endpoints is not None
        doc["grpc_endpoints"] = [node.endpoints.grpc]
        doc["rpc_url"] = node.endpoints.rpc
    doc.update(overrides)
    return doc


def settings(
    tmp_path: Path, node: LocalNode | None = None, **overrides: Any
) -> PocketChainSettings:
    return PocketChainSettings.model_validate(chain_doc(tmp_path, node, **overrides))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_the_config_accepts_a_pocket_chain(tmp_path: Path) -> None:
    config = parse_config({"suppliers": [SUPPLIER.address], "chain": chain_doc(tmp_path)})
    assert isinstance(config.chain, PocketChainSettings)
    assert config.dedup_ttl_seconds == 240 * 60  # 240 blocks of the default 60 s
    check_chain_settings(config.chain, config.suppliers)  # the key is there


def test_a_supplier_without_a_key_is_a_config_error_naming_it(tmp_path: Path) -> None:
    doc = {"suppliers": [SUPPLIER.address, SUPPLIER2.address], "chain": chain_doc(tmp_path)}
    path = tmp_path / "miner.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=SUPPLIER2.address) as caught:
        load_config(path)
    assert SUPPLIER.address not in str(caught.value) and SUPPLIER_HEX not in str(caught.value)
    result = CliRunner().invoke(main, ["run", "--config", str(path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and SUPPLIER2.address in lines[0] and SUPPLIER_HEX not in lines[0]


def test_a_bad_keys_file_names_the_line_not_the_content(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text('keys:\n  - "not-a-key-but-maybe-a-secret"\n')
    doc = chain_doc(tmp_path, keys={"keys_file": str(bad)})
    with pytest.raises(ChainSettingsError, match="line 2") as caught:
        check_chain_settings(PocketChainSettings.model_validate(doc), [SUPPLIER.address])
    assert "maybe-a-secret" not in str(caught.value)


async def test_build_chain_starts_a_pocket_client(
    node: LocalNode, tmp_path: Path, backend: RedisBackend
) -> None:
    produced = await node.produce_block()
    connection = await build_chain(
        settings(tmp_path, node), backend.client, suppliers=[SUPPLIER.address]
    )
    try:
        assert isinstance(connection.chain, PocketChain)
        assert connection.driver is not None  # the operator-safety checks
        assert await connection.chain.latest_block() == produced
    finally:
        await connection.close()


async def test_another_network_is_refused(
    node: LocalNode, tmp_path: Path, backend: RedisBackend
) -> None:
    with pytest.raises(ChainSettingsError, match=r"chain_id.*pocket-beta"):
        await build_chain(
            settings(tmp_path, node, chain_id="pocket-beta"),
            backend.client,
            suppliers=[SUPPLIER.address],
        )


async def test_a_missing_key_is_refused_before_the_node_is_asked(
    tmp_path: Path, backend: RedisBackend
) -> None:
    with pytest.raises(ChainSettingsError, match=SUPPLIER2.address):
        await build_chain(
            settings(tmp_path), backend.client, suppliers=[SUPPLIER.address, SUPPLIER2.address]
        )


async def test_an_unreachable_node_is_retried_then_refused(
    tmp_path: Path, backend: RedisBackend
) -> None:
    port = free_port()
    unreachable = settings(
        tmp_path,
        rpc_url=f"http://127.0.0.1:{port}",
        grpc_endpoints=[f"127.0.0.1:{port}"],
        start_timeout_seconds=0.3,
        rpc_timeout_seconds=0.5,
        reconnect_backoff_max_seconds=0.1,
    )
    with pytest.raises(ChainStartError, match=r"did not answer within 0\.3 s"):
        await build_chain(unreachable, backend.client, suppliers=[SUPPLIER.address])


async def test_run_reports_another_network_as_exit_2_and_a_dead_node_as_exit_1(
    node: LocalNode, tmp_path: Path, backend: RedisBackend
) -> None:
    from relayminer.cli.failures import CliFailure
    from relayminer.cli.serve import _open_chain
    from relayminer.keys import KeyBuilder

    def config(**chain: Any) -> Any:
        return parse_config(
            {"suppliers": [SUPPLIER.address], "chain": chain_doc(tmp_path, node, **chain)}
        )

    with pytest.raises(CliFailure, match="pocket-beta") as wrong:
        await _open_chain(config(chain_id="pocket-beta"), backend.client, KeyBuilder())
    assert wrong.value.code == 2
    port = free_port()
    dead = config(
        rpc_url=f"http://127.0.0.1:{port}",
        grpc_endpoints=[f"127.0.0.1:{port}"],
        start_timeout_seconds=0,
    )
    with pytest.raises(CliFailure, match="did not answer") as unreachable:
        await _open_chain(dead, backend.client, KeyBuilder())
    assert unreachable.value.code == 1
