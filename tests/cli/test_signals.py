"""Ctrl-C and SIGTERM (issue 14 item 2): the long-running commands stop cleanly, print what
they have and exit with their documented code; the embedded server, in its own session, does
not see the terminal's SIGINT.

A terminal's Ctrl-C goes to the whole foreground process group: the tests start the command
as the leader of its own group and send the signal to the group (``os.killpg``). They act on
the command's log lines (readiness), never on a timer.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from relayminer.cli.failures import CliFailure
from relayminer.cli.signals import StopSignals, run_stoppable
from relayminer.runtime.embedded import free_loopback_port
from tests.cli.watched import Watched
from tests.conftest import RealServer
from tests.test_embedded import wait_exit

pytestmark = pytest.mark.slow


@pytest.fixture
def procs() -> Iterator[list[Watched]]:
    started: list[Watched] = []
    yield started
    for w in started:
        if w.proc.poll() is None:
            os.killpg(w.proc.pid, signal.SIGKILL)
            w.proc.wait()


def server_pid(line: str) -> int:
    return int(line.split(" pid=")[1].split()[0])


def test_run_on_the_embedded_server_stops_cleanly_on_ctrl_c(
    tmp_path: Path, procs: list[Watched]
) -> None:
    config = tmp_path / "miner.yaml"
    doc = {
        "suppliers": ["pokt1sigint"],
        "metrics": {"port": free_loopback_port()},
        "chain": {"block_time_seconds": 0.2},
    }
    config.write_text(yaml.safe_dump(doc))
    run = Watched(["run", "--config", str(config)])
    procs.append(run)
    started = run.wait_for_line("embedded redis server started")
    pid = server_pid(started)
    assert "url=unix://" in started  # the address, usable with inspect/status while it runs
    run.wait_for_line("mining supplier")
    os.killpg(run.proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    code, _out = run.finish()
    assert code == 0, run.stderr
    text = run.stderr
    assert " WARNING " not in text and " ERROR " not in text, text  # lease release is quiet
    assert "stopped mining supplier" in text
    assert wait_exit(pid), "the embedded server outlived the miner"
    workdir = started.split("url=unix://")[1].split()[0].rsplit("/", 1)[0]
    assert not Path(workdir).exists()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_demo_prints_its_partial_summary_when_interrupted(
    procs: list[Watched], sig: signal.Signals, code: int
) -> None:
    args = ["--log-level", "INFO", "demo", "--json", "--suppliers", "1", "--sessions", "50"]
    demo = Watched([*args, "--block-time", "0.2", "--relays-per-second", "50"])
    procs.append(demo)
    pid = server_pid(demo.wait_for_line("embedded redis server started"))
    demo.wait_for_line("mining supplier")
    os.killpg(demo.proc.pid, sig)
    exit_code, out = demo.finish()
    assert exit_code == code, demo.stderr
    doc = json.loads(out)  # the partial summary, read from the still-running server
    assert doc["ok"] is False and "interrupted" in doc["problems"]
    assert doc["redis"] == "embedded" and doc["redis_server_pid"] == pid
    assert f"relayminer demo: interrupted by {sig.name}" in demo.stderr
    assert "StoreError" not in demo.stderr and "Traceback" not in demo.stderr
    assert wait_exit(pid)


def test_worker_stops_with_exit_0_on_ctrl_c(procs: list[Watched], real_server: RealServer) -> None:
    args = ["worker", "--redis-url", real_server.url, "--supplier", "pokt1sigw"]
    worker = Watched([*args, "--namespace", "sigw", "--block-ms", "50"])
    procs.append(worker)
    worker.wait_for_line("worker started")
    os.killpg(worker.proc.pid, signal.SIGINT)
    code, _out = worker.finish()
    assert code == 0, worker.stderr
    assert "Traceback" not in worker.stderr


# --- in process -------------------------------------------------------------------------------


def test_first_signal_stops_and_is_recorded() -> None:
    async def main(signals: StopSignals) -> str:
        os.kill(os.getpid(), signal.SIGTERM)
        await signals.stop.wait()
        return "stopped"

    result, signals = run_stoppable(main)
    assert result == "stopped" and signals.received is signal.SIGTERM


def test_second_signal_forces_the_stop() -> None:
    async def main(signals: StopSignals) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        await signals.stop.wait()  # a shutdown that would never end ...
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.Event().wait()

    with pytest.raises(CliFailure, match="second SIGINT") as failure:
        run_stoppable(main)
    assert failure.value.code == 130
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers removed
