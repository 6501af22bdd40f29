"""A real Sentinel group for tests: 1 master, 1 replica, 3 sentinels on free loopback ports.

Servers are started by :func:`relayminer.runtime.embedded.start_server`; sentinels are the same
binary with a config file and ``--sentinel`` (sentinels rewrite their config file, so each gets
its own copy in a private directory). Every child dies with the test process
(``PR_SET_PDEATHSIG``) and :meth:`SentinelGroup.stop` terminates them by pid.

Readiness and group formation are polled on real conditions with a bounded deadline: the
sentinels announce themselves to each other through the master every 2 s, which no event exposes
to a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
import redis.asyncio as aioredis

from relayminer.runtime.embedded import (
    RedisServerProcess,
    find_server_binary,
    free_loopback_port,
    start_server,
)

MASTER_NAME = "relaymaster"
DOWN_AFTER_MS = 500
FAILOVER_TIMEOUT_MS = 3000
QUORUM = 2
POLL_S = 0.05


def _die_with_parent() -> None:  # runs in the child between fork and exec
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def wait_until(
    condition: Callable[[], Awaitable[bool]], deadline_s: float, what: str
) -> float:
    """Poll ``condition`` until it holds; return the seconds it took; fail after ``deadline_s``."""
    start = time.monotonic()
    while True:
        with contextlib.suppress(redis.RedisError, OSError):
            if await condition():
                return time.monotonic() - start
        if time.monotonic() - start > deadline_s:
            raise AssertionError(f"not reached within {deadline_s}s: {what}")
        await asyncio.sleep(POLL_S)


@dataclass
class SentinelProcess:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@dataclass
class SentinelGroup:
    master: RedisServerProcess
    replica: RedisServerProcess
    sentinels: list[SentinelProcess] = field(default_factory=list)

    @property
    def sentinel_ports(self) -> list[int]:
        return [s.port for s in self.sentinels]

    def url(self, *, db: int = 0, password: str = "") -> str:
        auth = f":{password}@" if password else ""
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis-sentinel://{auth}{hosts}/{MASTER_NAME}/{db}"

    def client(self, server: RedisServerProcess) -> aioredis.Redis:
        """A direct (non-sentinel) client of one data server."""
        assert server.port is not None
        return aioredis.Redis(host="127.0.0.1", port=server.port, protocol=2)

    def sentinel_client(self, index: int = 0) -> aioredis.Redis:
        return aioredis.Redis(host="127.0.0.1", port=self.sentinel_ports[index], protocol=2)

    def kill_master(self) -> None:
        """SIGKILL the master (no shutdown, no last write flushed)."""
        self.master.kill()

    def stop(self) -> None:
        for s in self.sentinels:
            s.stop()
        self.replica.stop()
        self.master.stop()

    def logs(self) -> str:
        parts = [f"--- sentinel {s.port} ---\n{s.log_tail()}" for s in self.sentinels]
        return "\n".join(parts)


def _sentinel_config(port: int, master_port: int, workdir: Path) -> str:
    return "\n".join(
        [
            f"port {port}",
            "bind 127.0.0.1",
            "daemonize no",
            f'dir "{workdir}"',
            'logfile ""',
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} {QUORUM}",
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {MASTER_NAME} 1",
            "",
        ]
    )


def _start_sentinel(binary: str, master_port: int, workdir: Path) -> SentinelProcess:
    workdir.mkdir(parents=True)
    port = free_loopback_port()
    conf = workdir / "sentinel.conf"
    conf.write_text(_sentinel_config(port, master_port, workdir))
    log_path = workdir / "sentinel.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [binary, str(conf), "--sentinel"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            close_fds=True,
        )
    return SentinelProcess(port, process, log_path)


async def start_group(
    workdir: Path, *, sentinels: int = 3, deadline_s: float = 20.0
) -> SentinelGroup:
    """Start the group and return once every sentinel sees the master, the replica and the
    other sentinels (so a failover can reach its quorum and elect a leader)."""
    binary = find_server_binary()
    master = start_server(binary)
    assert master.port is not None
    replica = start_server(binary, extra_args=("--replicaof", "127.0.0.1", str(master.port)))
    group = SentinelGroup(master, replica)
    try:
        async with group.client(replica) as r:

            async def linked() -> bool:
                info = await r.info("replication")
                return bool(info.get("master_link_status") == "up")

            await wait_until(linked, deadline_s, "replica linked to the master")
        for i in range(sentinels):
            group.sentinels.append(_start_sentinel(binary, master.port, workdir / f"s{i}"))
        for i in range(sentinels):
            async with group.sentinel_client(i) as s:

                async def formed(s: aioredis.Redis = s) -> bool:
                    state = await s.sentinel_master(MASTER_NAME)
                    assert isinstance(state, dict)
                    return (
                        int(state["num-other-sentinels"]) == sentinels - 1
                        and int(state["num-slaves"]) == 1
                        and state["port"] == master.port
                    )

                await wait_until(formed, deadline_s, "sentinel group formed")
    except BaseException:
        logs = group.logs()
        group.stop()
        if isinstance(logs, str) and logs:
            print(logs)  # shown by pytest on failure
        raise
    return group


async def switch_master_event(group: SentinelGroup) -> tuple[asyncio.Task[float], aioredis.Redis]:
    """A task that completes with ``time.monotonic()`` when a sentinel announces
    ``+switch-master`` (the failover is done: the promoted replica is the master). Subscribed
    before it is returned, so no announcement is missed."""
    client = group.sentinel_client(0)
    pubsub = client.pubsub()
    await pubsub.subscribe("+switch-master")

    async def wait() -> float:
        try:
            async for message in pubsub.listen():
                if message["type"] == "message":
                    return time.monotonic()
            raise AssertionError("sentinel subscription ended")
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    return asyncio.create_task(wait()), client
