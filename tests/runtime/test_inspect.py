"""``relayminer inspect``: the data functions on both backends, the CLI on the real server.

A small world (tests/lifecycle/support.py: chain, workers, lifecycles stepped block by block)
puts sessions in several states; relays left unread, a pending entry and a dead letter make
the stream view non-trivial.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from click.testing import CliRunner
from redis.asyncio import Redis

from relayminer.cli import main
from relayminer.inspection import (
    SessionRow,
    find_suppliers,
    inspect_sessions,
    inspect_smst,
    inspect_streams,
    rows_as_dict,
)
from relayminer.keys import KeyBuilder, Namespace
from relayminer.smst.layout import DEFAULT_LAYOUT, SMSTLayout
from relayminer.smst.nodes import digest_count, digest_sum
from tests.conftest import RealServer, RedisBackend
from tests.lifecycle.support import APP2, SUP1, SUP2, SVC2, World

KB = KeyBuilder()


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The CLI reconfigures the root logger: put it back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


class Populated:
    """What :func:`populate` wrote."""

    def __init__(self, claimed: str, active: str, sup2: str) -> None:
        self.claimed = claimed  # SUP1, 5 relays of svc (CU 10), claimed at height 6
        self.active = active  # SUP1, 3 relays of svc2 (CU 7) in session 2, still active
        self.sup2 = sup2  # SUP2, 2 relays, claimed


async def populate(redis: Redis, layout: SMSTLayout = DEFAULT_LAYOUT) -> Populated:
    world = await World.create(redis, layout=layout)
    try:
        claimed = await world.relays(SUP1, 5)  # session 1 (blocks 1..4)
        sup2 = await world.relays(SUP2, 2, app=APP2)
        await world.run_to(6)  # claim window of session 1 opens at 6: claimed, tree sealed
        active = await world.relays(SUP1, 3, service=SVC2)  # session 2 (blocks 5..8)
        await world.step()  # height 7: mined, still active
        # SUP2's stream: two relays nobody read, one delivered but never acked, a dead letter.
        await world.relays(SUP2, 3, app=APP2)
        stream = KB.stream_key(SUP2)
        await redis.xreadgroup(KB.consumer_group(), "stuck", {stream: ">"}, count=1)
        await redis.xadd(KB.dead_letter_stream_key(SUP2), {"reason": "test"})
        return Populated(claimed, active, sup2)
    finally:
        await world.close()


async def test_sessions_view(backend: RedisBackend) -> None:
    p = await populate(backend.client)
    assert await find_suppliers(backend.client) == [SUP1, SUP2]
    view = await inspect_sessions(backend.client)
    assert list(view) == [SUP1, SUP2]
    rows = {r.session_id: r for r in view[SUP1]}
    assert set(rows) == {p.claimed, p.active}
    claimed, active = rows[p.claimed], rows[p.active]
    assert (claimed.state, claimed.relay_count, claimed.compute_units) == ("claimed", 5, 50)
    assert (claimed.session_start_height, claimed.session_end_height) == (1, 4)
    assert claimed.claim_tx_hash and not claimed.proof_tx_hash
    assert claimed.settlement_outcome is None
    assert (active.state, active.relay_count, active.compute_units) == ("active", 3, 21)
    assert (active.session_start_height, active.session_end_height) == (5, 8)
    assert not active.claim_tx_hash
    # Ordered by end height.
    assert [r.session_id for r in view[SUP1]] == [p.claimed, p.active]
    # One supplier only.
    only = await inspect_sessions(backend.client, supplier=SUP2)
    assert list(only) == [SUP2]
    assert [(r.session_id, r.relay_count) for r in only[SUP2]] == [(p.sup2, 2)]
    doc = rows_as_dict(view)
    assert doc[SUP1][0]["session_id"] == p.claimed
    json.dumps(doc)  # JSON-ready


@pytest.mark.parametrize("layout", list(SMSTLayout), ids=[x.value for x in SMSTLayout])
async def test_smst_view(backend: RedisBackend, layout: SMSTLayout) -> None:
    p = await populate(backend.client, layout)
    view = await inspect_smst(backend.client, supplier=SUP1)
    rows = {r.session_id: r for r in view[SUP1]}
    claimed, active = rows[p.claimed], rows[p.active]
    assert claimed.root == claimed.sealed_root  # the tree of every stored leaf is the claimed
    assert active.root is not None and active.sealed_root is None
    if layout is SMSTLayout.JOURNAL:
        assert (claimed.live_root, claimed.nodes, claimed.leaves) == (None, 0, 5)
        assert (active.count, active.sum, active.leaves, active.nodes) == (3, 21, 3, 0)
        return
    assert active.root == active.live_root and claimed.leaves == 0
    assert claimed.sealed_root is not None and claimed.live_root is not None
    assert claimed.sealed_root == claimed.live_root  # sealed at claim time, no change since
    root = bytes.fromhex(claimed.sealed_root)
    assert (claimed.count, claimed.sum) == (digest_count(root), digest_sum(root)) == (5, 50)
    assert claimed.nodes == await backend.client.hlen(KB.smst_nodes_key(SUP1, p.claimed)) > 0
    assert active.sealed_root is None and active.live_root is not None
    assert (active.count, active.sum) == (3, 21)
    assert active.nodes > 0
    every = await inspect_smst(backend.client)
    assert set(every) == {SUP1, SUP2}


async def test_smst_view_finds_trees_without_a_session(backend: RedisBackend) -> None:
    root = b"\x01" * 32 + (70).to_bytes(8, "big") + (7).to_bytes(8, "big")
    await backend.client.set(KB.smst_live_root_key("pokt1orphan", "s1"), root)
    await backend.client.hset(KB.smst_nodes_key("pokt1orphan", "s1"), "a", "b")
    view = await inspect_smst(backend.client)
    assert [
        (r.session_id, r.count, r.sum, r.nodes, r.sealed_root) for r in view["pokt1orphan"]
    ] == [("s1", 7, 70, 1, None)]


async def test_streams_view(backend: RedisBackend) -> None:
    await populate(backend.client)
    view = await inspect_streams(backend.client)
    assert list(view) == [SUP1, SUP2]
    (s1,) = view[SUP1]
    assert (s1.stream, s1.length, s1.pending, s1.lag, s1.dead_letters) == (
        KB.stream_key(SUP1),
        0,  # acked and deleted
        0,
        0,
        0,
    )
    assert s1.consumers == 1 and s1.group == KB.consumer_group()
    (s2,) = view[SUP2]
    assert s2.length == 3
    assert s2.pending == 1
    assert s2.lag == 2
    assert s2.consumers == 2  # the worker "w" and "stuck"
    assert (s2.dead_letter_stream, s2.dead_letters) == (KB.dead_letter_stream_key(SUP2), 1)


async def test_streams_view_of_a_stream_without_group_or_data(backend: RedisBackend) -> None:
    await backend.client.xadd(KB.stream_key("pokt1raw"), {"data": b"x"})
    view = await inspect_streams(backend.client)
    assert list(view) == ["pokt1raw"]
    (row,) = view["pokt1raw"]
    assert (row.length, row.pending, row.lag, row.consumers, row.dead_letters) == (1, 0, None, 0, 0)
    (missing,) = (await inspect_streams(backend.client, supplier="pokt1none"))["pokt1none"]
    assert (missing.length, missing.pending, missing.lag) == (0, 0, None)


async def test_an_empty_database_has_nothing(backend: RedisBackend) -> None:
    assert await inspect_sessions(backend.client) == {}
    assert await inspect_smst(backend.client) == {}
    assert await inspect_streams(backend.client) == {}


async def test_a_namespace_is_honoured(backend: RedisBackend) -> None:
    await populate(backend.client)
    other = KeyBuilder(Namespace(base_prefix="other"))
    assert await find_suppliers(backend.client, other) == []
    assert await inspect_sessions(backend.client, keys=other) == {}


# --- the CLI, against the real server -----------------------------------------------------------


@pytest.fixture
def populated_url(real_server: RealServer) -> tuple[str, Populated]:
    async def go() -> Populated:
        client = aioredis.Redis.from_url(real_server.url, protocol=2)
        try:
            await client.flushall()
            return await populate(client)
        finally:
            await client.aclose()

    return real_server.url, asyncio.run(go())


def invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_sessions_table_and_json(populated_url: tuple[str, Populated]) -> None:
    url, p = populated_url
    table = invoke("inspect", "sessions", "--redis-url", url)
    assert f"sessions of {SUP1}" in table and f"sessions of {SUP2}" in table
    assert p.claimed[:16] in table and "claimed" in table and "active" in table
    doc = json.loads(invoke("inspect", "sessions", "--redis-url", url, "--json"))
    assert set(doc) == {SUP1, SUP2}
    rows = {r["session_id"]: r for r in doc[SUP1]}
    assert rows[p.claimed]["relay_count"] == 5
    assert rows[p.claimed]["compute_units"] == 50
    assert rows[p.active]["state"] == "active"
    assert set(SessionRow.__slots__) == set(rows[p.active])
    one = json.loads(
        invoke("inspect", "sessions", "--redis-url", url, "--supplier", SUP2, "--json")
    )
    assert list(one) == [SUP2]


def test_cli_smst_table_and_json(populated_url: tuple[str, Populated]) -> None:
    url, p = populated_url
    table = invoke("inspect", "smst", "--redis-url", url, "--supplier", SUP1)
    assert f"SMSTs of {SUP1}" in table and p.active[:16] in table
    doc = json.loads(invoke("inspect", "smst", "--redis-url", url, "--json"))
    rows = {r["session_id"]: r for r in doc[SUP1]}
    assert (rows[p.claimed]["count"], rows[p.claimed]["sum"]) == (5, 50)
    assert rows[p.active]["sealed_root"] is None
    assert "root" in table.split("live root")[0]  # the layout-independent root column first
    root = rows[p.claimed]["root"]
    assert root is not None and root[:24] in table


def test_cli_streams_table_and_json(populated_url: tuple[str, Populated]) -> None:
    url, _p = populated_url
    table = invoke("inspect", "streams", "--redis-url", url)
    assert KB.stream_key(SUP2) in table
    doc = json.loads(invoke("inspect", "streams", "--redis-url", url, "--json"))
    (row,) = doc[SUP2]
    assert (row["length"], row["pending"], row["lag"], row["dead_letters"]) == (3, 1, 2, 1)


def test_cli_on_an_empty_namespace(populated_url: tuple[str, Populated]) -> None:
    url, _p = populated_url
    out = invoke("inspect", "sessions", "--redis-url", url, "--namespace", "nothing")
    assert "no suppliers found" in out
    assert (
        json.loads(invoke("inspect", "streams", "--redis-url", url, "--namespace", "x", "--json"))
        == {}
    )


@pytest.mark.parametrize("view", ["sessions", "smst", "streams"])
def test_cli_reports_an_unreachable_server_in_one_line(view: str) -> None:
    from relayminer.runtime.embedded import free_loopback_port

    url = f"redis://:hunter2@127.0.0.1:{free_loopback_port()}/0"
    result = CliRunner().invoke(main, ["inspect", view, "--redis-url", url])
    assert result.exit_code == 1
    assert result.stdout == ""
    redacted = url.replace("hunter2", "***")
    assert result.stderr.startswith(f"relayminer inspect {view}: cannot reach Redis at {redacted}")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "hunter2" not in result.output


def test_inspect_help() -> None:
    out = invoke("inspect", "--help")
    assert "sessions" in out and "smst" in out and "streams" in out
    for sub in ("sessions", "smst", "streams"):
        assert "--redis-url" in invoke("inspect", sub, "--help")
