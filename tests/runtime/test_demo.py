"""``relayminer demo``: end to end as a process on the embedded server, and in-process on both
backends (tiny scale, fast blocks).

The demo ends by itself once every session is settled; the tests wait for the process or the
coroutine, never on a timer.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from click.testing import CliRunner
from rich.console import Console

from relayminer.chain.sim.node.crypto import is_address
from relayminer.chain.sim.setup import open_simulated_chain, sim_chain_config
from relayminer.cli import main
from relayminer.demo import (
    ConsoleLogHandler,
    DemoError,
    DemoOptions,
    DemoProgress,
    DemoSummary,
    demo_config,
    render_progress,
    render_summary,
    run_demo,
    supplier_addresses,
    with_live_display,
)
from relayminer.demo import summary as summary_module
from relayminer.demo.summary import MemorySampler, SubmitDelays, percentile
from relayminer.keys import KeyBuilder
from tests.conftest import RealServer, RedisBackend

CONTRACT = (
    "relays_published",
    "relays_mined",
    "sessions",
    "sessions_proved",
    "sessions_probabilistic_proved",
    "sessions_failed",
    "claims_settled",
)
FAST = ("--block-time", "0.2", "--sessions", "2", "--relays-per-second", "40", "--seed", "7")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The CLI reconfigures the root logger: put it back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def check_contract(doc: dict[str, object]) -> None:
    for name in CONTRACT:
        assert isinstance(doc[name], int), name
    assert doc["ok"] is True, doc["problems"]
    assert doc["relays_mined"] == doc["relays_published"]
    assert isinstance(doc["relays_published"], int) and doc["relays_published"] > 0
    assert doc["sessions_failed"] == 0
    assert doc["sessions"] == doc["sessions_proved"] + doc["sessions_probabilistic_proved"]  # type: ignore[operator]
    # The demo waits for settlement: every session's claim was settled.
    assert doc["claims_settled"] == doc["sessions_proved"] + doc["sessions_probabilistic_proved"]  # type: ignore[operator]
    assert doc["problems"] == []


def process_is_gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    # The pid may have been reused since: it is not our server unless it is a server.
    name = status.splitlines()[0]
    return "server" not in name


def test_demo_process_end_to_end_on_the_embedded_server() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "relayminer", "demo", "--json", "--suppliers", "2", *FAST],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # stdout is the JSON object and nothing else
    assert isinstance(doc, dict)
    check_contract(doc)
    assert doc["redis"] == "embedded"
    assert doc["suppliers"] == supplier_addresses(2)
    assert doc["rewards_total_upokt"] > 0
    assert sum(doc["rewards_upokt"].values()) == doc["rewards_total_upokt"]
    assert doc["end_height"] >= 18  # session 2 (blocks 5..8) settles in block 18
    assert isinstance(doc["redis_server_pid"], int)
    assert process_is_gone(doc["redis_server_pid"])  # the embedded server did not survive


async def test_demo_in_process(backend: RedisBackend) -> None:
    progress: list[DemoProgress] = []
    options = DemoOptions(
        suppliers=1, sessions=1, relays_per_second=30, block_time_seconds=0.2, seed=3
    )
    summary = await run_demo(backend.client, options, on_progress=progress.append)
    assert summary.ok, summary.problems
    doc = summary.as_dict()
    check_contract(doc)
    # relays_mined is read back from Redis: the sessions' relay counts.
    assert summary.sessions == 6  # 6 (application, service) pairs, one supplier
    assert summary.claims_submitted == summary.sessions
    assert summary.proofs_submitted == summary.sessions_proved
    assert summary.sessions_settled == summary.sessions
    assert summary.end_height >= 14  # session 1 settles in block 14
    assert summary.rewards_total_upokt == summary.chain["supplier_rewards_upokt"] > 0
    assert doc["redis"] == "external" and doc["redis_server_pid"] is None
    phases = [p.phase for p in progress]
    assert phases[0] == "load" and phases[-1] == "done"
    assert "settling" in phases
    assert progress[-1].relays_published == summary.relays_published
    # The namespace now holds a chain: a second demo refuses to mix with it.
    with pytest.raises(DemoError, match="already holds a simulated chain"):
        await run_demo(backend.client, options)


async def test_demo_is_interrupted_by_its_stop_event(backend: RedisBackend) -> None:
    stop = asyncio.Event()
    summary = await run_demo(
        backend.client,
        DemoOptions(suppliers=1, block_time_seconds=0.2),
        on_progress=lambda _p: stop.set(),
        stop=stop,
    )
    assert not summary.ok
    assert "interrupted" in summary.problems


async def test_demo_refuses_a_namespace_that_holds_a_chain(backend: RedisBackend) -> None:
    options = DemoOptions()
    config = demo_config(options)
    chain = await open_simulated_chain(
        config.chain, backend.client, keys=KeyBuilder(), suppliers=config.suppliers
    )
    await chain.close()
    with pytest.raises(DemoError, match="--namespace"):
        await run_demo(backend.client, options)


@pytest.mark.parametrize(
    "bad",
    [
        {"suppliers": 0},
        {"sessions": 0},
        {"relays_per_second": 0},
        {"block_time_seconds": 0},
        {"drop_rate": 1.0},
        {"settle_grace_blocks": -1},
        {"chain": "mainnet"},
    ],
)
def test_demo_options_are_validated(bad: dict[str, object]) -> None:
    (name,) = bad
    with pytest.raises(ValueError, match=name):
        DemoOptions(**bad)  # type: ignore[arg-type]


def test_demo_on_a_localnet_process_end_to_end() -> None:
    """relays -> miner -> Pocket chain client -> localnet over loopback, as a process."""
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "relayminer", "demo", "--chain", "localnet", "--json"),
            *("--suppliers", "2", "--sessions", "1", "--block-time", "0.5"),
            *("--relays-per-second", "40", "--seed", "5"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    check_contract(doc)
    assert doc["sessions_settled"] == doc["sessions"] > 0
    # real bech32 addresses of the demo's test keys, signing real txs
    assert len(doc["suppliers"]) == 2 and all(is_address(s) for s in doc["suppliers"])
    assert doc["chain"]["txs_executed"] >= 1 and doc["chain"]["txs_failed"] == 0
    # rewards are net of the fees the suppliers paid
    assert 0 < doc["rewards_total_upokt"] < doc["chain"]["supplier_rewards_upokt"]


def test_demo_drop_rate_is_refused_on_a_localnet() -> None:
    result = CliRunner().invoke(main, ["demo", "--chain", "localnet", "--drop-rate", "0.5"])
    assert result.exit_code == 2 and "--drop-rate" in result.output


async def test_demo_on_a_localnet_in_process(backend: RedisBackend) -> None:
    options = DemoOptions(
        suppliers=1,
        sessions=1,
        relays_per_second=30,
        block_time_seconds=0.2,
        seed=3,
        chain="localnet",
    )
    summary = await run_demo(backend.client, options)
    assert summary.ok, summary.problems
    check_contract(summary.as_dict())
    assert summary.sessions_settled == summary.sessions == summary.claims_submitted
    assert summary.proofs_submitted == summary.sessions_proved
    # one tx per supplier per pass: claims, then proofs, went through the node's ante
    assert summary.chain["txs_executed"] >= 1 and summary.chain["txs_rejected"] == 0
    (supplier,) = summary.suppliers
    assert is_address(supplier)
    with pytest.raises(DemoError, match="already holds a simulated chain"):
        await run_demo(backend.client, options)


def test_demo_config_has_two_services_and_four_applications() -> None:
    config = demo_config(DemoOptions(suppliers=3, block_time_seconds=0.5, seed=4))
    assert config.suppliers == supplier_addresses(3)
    chain = sim_chain_config(config.chain, config.suppliers)
    assert {s: v.compute_units_per_relay for s, v in chain.services.items()} == {
        "anvil": 10,
        "llm": 7,
    }
    assert (
        chain.services["llm"].relay_difficulty_target
        < chain.services["anvil"].relay_difficulty_target
    )
    assert len(chain.applications) == 4
    p = chain.shared_params
    assert (
        p.num_blocks_per_session,
        p.grace_period_end_offset_blocks,
        p.claim_window_open_offset_blocks,
        p.claim_window_close_offset_blocks,
        p.proof_window_open_offset_blocks,
        p.proof_window_close_offset_blocks,
    ) == (4, 1, 1, 4, 0, 4)
    assert chain.block_time_seconds == 0.5 and chain.seed == 4


def test_demo_cli_in_process_on_the_real_server(real_server: RealServer) -> None:
    """The CLI's JSON and human outputs (the real server, one namespace per run)."""

    async def flush() -> None:
        client = aioredis.Redis.from_url(real_server.url, protocol=2)
        await client.flushall()
        await client.aclose()

    asyncio.run(flush())
    common = ["--redis-url", real_server.url, "--suppliers", "1", "--sessions", "1"]
    common += ["--block-time", "0.2", "--relays-per-second", "30"]
    result = CliRunner().invoke(main, ["demo", "--json", *common, "--namespace", "one"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    check_contract(doc)
    assert doc["redis"] == "external"

    result = CliRunner().invoke(main, ["demo", *common, "--namespace", "two"])
    assert result.exit_code == 0, result.output
    assert "relayminer demo - summary" in result.stdout
    assert "OK: every session was proved and settled" in result.stdout

    # The same namespace again: refused, exit code 2, the reason on stderr.
    result = CliRunner().invoke(main, ["demo", *common, "--namespace", "two"])
    assert result.exit_code == 2
    assert "already holds a simulated chain" in result.stderr


def test_demo_cli_fails_when_sessions_fail(real_server: RealServer) -> None:
    """The mempool drops (almost) every claim and proof tx: sessions fail (claim missing) or
    end proved with an expired claim; either way exit code 1 and the reasons on stderr."""

    async def flush() -> None:
        client = aioredis.Redis.from_url(real_server.url, protocol=2)
        await client.flushall()
        await client.aclose()

    asyncio.run(flush())
    args = ["demo", "--json", "--redis-url", real_server.url, "--suppliers", "2"]
    args += ["--sessions", "1", "--block-time", "0.2", "--relays-per-second", "30"]
    result = CliRunner().invoke(main, [*args, "--drop-rate", "0.99"])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    assert doc["relays_mined"] == doc["relays_published"] > 0
    assert doc["claims_settled"] < doc["sessions"]
    assert doc["problems"]
    for problem in doc["problems"]:
        assert problem in result.stderr


def test_demo_cli_reports_an_unreachable_server() -> None:
    from relayminer.runtime.embedded import free_loopback_port

    url = f"redis://127.0.0.1:{free_loopback_port()}/0"
    result = CliRunner().invoke(main, ["demo", "--json", "--redis-url", url])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"relayminer demo: cannot reach Redis at {url} (")
    assert result.stderr.count("\n") == 1  # one line, no traceback


def test_demo_help() -> None:
    result = CliRunner().invoke(main, ["demo", "--help"])
    assert result.exit_code == 0
    for flag in (
        "--json",
        "--suppliers",
        "--relays-per-second",
        "--sessions",
        "--block-time",
        "--drop-rate",
        "--seed",
        "--redis-url",
    ):
        assert flag in result.output


def test_rendering() -> None:
    console = Console(record=True, width=120)
    progress = DemoProgress(
        phase="settling",
        height=9,
        relays_published=100,
        relays_mined=99,
        published_per_second=50.0,
        mined_per_second=49.5,
        sessions_by_state={"active": 2, "proved": 1, "claim_window_closed": 1},
        claims_submitted=3,
        proofs_submitted=1,
        claims_settled=0,
        elapsed_seconds=4.2,
        settle_height=18,
    )
    console.print(render_progress(progress))
    text = console.export_text(clear=False)
    assert "last settlement at 18" in text and "100 / 99" in text and "active 2" in text

    summary = DemoSummary(
        relays_published=10,
        relays_mined=9,
        sessions=2,
        sessions_proved=1,
        sessions_probabilistic_proved=0,
        sessions_failed=1,
        sessions_by_state={"proved": 1, "proof_window_closed": 1},
        sessions_settled=1,
        claims_submitted=2,
        proofs_submitted=1,
        claims_settled=1,
        claims_expired=1,
        rewards_upokt={"pokt1a": 1_500_000},
        rewards_total_upokt=1_500_000,
        suppliers=["pokt1a"],
        published_per_supplier={"pokt1a": 10},
        start_height=1,
        end_height=18,
        duration_seconds=4.0,
        load_seconds=1.0,
        relays_per_second=10.0,
        chain={},
        problems=["relays_mined (9) != relays_published (10)"],
    )
    console.print(render_summary(summary))
    text = console.export_text()
    assert "1.500000 POKT" in text
    assert "FAILED: relays_mined (9) != relays_published (10)" in text
    assert not summary.ok and summary.blocks == 17


def test_live_display_and_log_handler() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    sink, live = with_live_display(console)
    assert sink is not None
    progress = DemoProgress("load", 3, 10, 10, 5.0, 5.0, {}, 0, 0, 0, 1.0)
    with live:
        sink(progress)
        handler = ConsoleLogHandler(console, logging.Formatter("%(levelname)s %(message)s"))
        handler.emit(logging.LogRecord("x", logging.WARNING, "f", 1, "careful %s", ("now",), None))
    assert "relays published / mined" in out.getvalue()
    assert "WARNING careful now" in out.getvalue()
    assert with_live_display(None)[0] is None


async def test_watch_pause_waits_once_loading_has_ended() -> None:
    """Regression (issue 14 item 4): a finished load task passed to ``asyncio.wait`` made every
    pause return at once, a busy spin burning a core for the whole settling phase."""
    import fakeredis

    from relayminer.demo.runner import _Demo

    client = fakeredis.FakeAsyncRedis(protocol=2)
    demo = _Demo(client, DemoOptions(refresh_seconds=600), None, asyncio.Event())
    load_done = asyncio.create_task(asyncio.sleep(0))
    await load_done
    miner_forever = asyncio.create_task(asyncio.Event().wait())
    try:
        pause = asyncio.create_task(demo._pause(load_done, miner_forever))
        for _ in range(20):  # plenty of loop iterations: the old code returned after one
            await asyncio.sleep(0)
        assert not pause.done()
        demo.live.wake.set()  # a lifecycle pass ended: the display refreshes
        await asyncio.wait_for(pause, 10)
        demo.live.wake.clear()
        pause = asyncio.create_task(demo._pause(load_done, miner_forever))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not pause.done()
        miner_forever.cancel()  # the miner died: the watch loop must notice at once
        await asyncio.wait_for(pause, 10)
    finally:
        miner_forever.cancel()
        await client.aclose()


def test_submit_delays_count_each_delay_and_give_the_same_percentiles() -> None:
    delays = SubmitDelays()
    values = [0] * 950 + [1] * 40 + [2] * 9 + [5]
    for v in values:
        delays.add("claim", v)
    delays.add("proof", 3)
    assert delays.as_dict() == {
        "claim": {
            "count": 1000,
            "p50": percentile(values, 50),
            "p99": percentile(values, 99),
            "max": 5,
        },
        "proof": {"count": 1, "p50": 3, "p99": 3, "max": 3},
    }
    assert percentile(values, 99) == 1  # rank 990: the last of the 1s
    assert delays.as_dict()["claim"]["p50"] == 0 and delays.as_dict()["claim"]["p99"] == 1
    assert len(delays.by_phase["claim"]) == 4  # one entry per distinct delay, not per claim


def test_the_memory_sampler_stays_bounded_over_a_long_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = iter(range(10_000))
    rss = iter([100.0 + (i % 7) for i in range(10_000)])
    monkeypatch.setattr("relayminer.demo.summary.time.monotonic", lambda: float(next(clock)))
    monkeypatch.setattr(summary_module, "_rss_mb", lambda: next(rss))
    sampler = MemorySampler(started=0.0, max_samples=64)
    next(clock)  # t = 0 is the start
    for _ in range(1000):  # t = 1 .. 1000
        sampler.sample()
    assert len(sampler.samples) <= 64
    times = [t for t, _mb in sampler.samples]
    assert times == sorted(times) and times[0] <= 16 and times[-1] == 1000  # spans the run
    report = sampler.rss()
    assert report["max"] == 106.0  # exact, though most samples were thinned out
    assert report["end"] == 100.0 + (999 % 7)
    warm = next(mb for t, mb in sampler.samples if t >= 250)
    assert report["after_warmup"] == warm and report["half"] in {mb for _t, mb in sampler.samples}
