"""A real Redis Cluster for tests: 3 masters + 3 replicas on free loopback ports.

Every node is a :func:`relayminer.runtime.embedded.start_server` child (Debian's ``redis-server``
when installed) in its own directory of the test's tmp dir, with ``cluster-enabled yes``, a free
cluster-bus port (``cluster-port``: the default port + 10000 may be taken or out of range) and a
short ``cluster-node-timeout`` so a killed master's replica is promoted within seconds.

The cluster is assembled with plain commands (what ``redis-cli --cluster create`` sends): each
master takes a third of the 16384 slots (``CLUSTER ADDSLOTSRANGE``), every node ``CLUSTER MEET``s
the first, each replica ``CLUSTER REPLICATE``s its master. Readiness is polled on real conditions
with a bounded deadline (``cluster_state:ok`` on every node, every replica linked): the cluster
bus gossips on its own schedule, which no event exposes to a client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from relayminer.runtime.connections import connect_cluster
from relayminer.runtime.embedded import (
    RedisServerProcess,
    find_server_binary,
    free_loopback_port,
    start_server,
)
from tests.runtime.sentinel_support import wait_until  # one poller for every real-server group

SLOTS = 16384
NODE_TIMEOUT_MS = 1000


@dataclass
class ClusterNodeProcess:
    server: RedisServerProcess
    workdir: Path
    bus_port: int
    node_id: str = ""

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    def client(self) -> aioredis.Redis:
        """A direct (non-cluster) client of this node."""
        return aioredis.Redis(host="127.0.0.1", port=self.port, protocol=2)


@dataclass
class ClusterGroup:
    masters: list[ClusterNodeProcess]
    replicas: list[ClusterNodeProcess] = field(default_factory=list)

    @property
    def nodes(self) -> list[ClusterNodeProcess]:
        return [*self.masters, *self.replicas]

    @property
    def url(self) -> str:
        return "redis-cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.masters)

    def client(self, max_connections: int = 64) -> RedisCluster:
        return connect_cluster(self.url, max_connections=max_connections)

    def stop(self) -> None:
        for node in self.nodes:
            node.server.stop()

    async def wait_healthy(self, deadline_s: float = 30.0) -> None:
        """Every live node reports ``cluster_state:ok`` and every slot is served."""
        for node in self.nodes:
            if not node.server.is_running():
                continue
            async with node.client() as c:

                async def ok(c: aioredis.Redis = c) -> bool:
                    info = await c.cluster("INFO")
                    return bool(
                        info["cluster_state"] == "ok" and int(info["cluster_slots_ok"]) == SLOTS
                    )

                await wait_until(ok, deadline_s, f"cluster_state:ok on {node.port}")


def _start_node(binary: str, workdir: Path) -> ClusterNodeProcess:
    bus_port = free_loopback_port()
    args = (
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        str(workdir / "nodes.conf"),
        "--cluster-node-timeout",
        str(NODE_TIMEOUT_MS),
        "--cluster-port",
        str(bus_port),
        # a replica is promoted however long its link was down (tests kill masters)
        "--cluster-replica-validity-factor",
        "0",
        # a replica's first full sync starts at once (default: 5 s, waiting for more replicas)
        "--repl-diskless-sync-delay",
        "0",
    )
    server = start_server(binary, workdir=workdir, extra_args=args)
    return ClusterNodeProcess(server, workdir, bus_port)


async def _node_id(node: ClusterNodeProcess) -> str:
    async with node.client() as c:
        return str((await c.execute_command("CLUSTER", "MYID")).decode())


async def start_cluster(
    workdir: Path, *, masters: int = 3, replicas_per_master: int = 1, deadline_s: float = 30.0
) -> ClusterGroup:
    """Start and assemble the cluster; return once it is healthy and every replica is linked."""
    binary = find_server_binary()
    group = ClusterGroup([])
    try:
        for i in range(masters):
            group.masters.append(_start_node(binary, workdir / f"m{i}"))
        for i in range(masters * replicas_per_master):
            group.replicas.append(_start_node(binary, workdir / f"r{i}"))
        for node in group.nodes:
            node.node_id = await _node_id(node)
        per = SLOTS // masters
        for i, node in enumerate(group.masters):
            first, last = i * per, SLOTS - 1 if i == masters - 1 else (i + 1) * per - 1
            async with node.client() as c:
                await c.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        for i, node in enumerate(group.nodes):  # every pair meets: no waiting for gossip
            async with node.client() as c:
                for other in group.nodes[i + 1 :]:
                    await c.execute_command(
                        "CLUSTER", "MEET", "127.0.0.1", other.port, other.bus_port
                    )
        for node in group.nodes:
            async with node.client() as c:

                async def knows_all(c: aioredis.Redis = c) -> bool:
                    text = (await c.execute_command("CLUSTER", "NODES")).decode()
                    known = {line.split()[0] for line in text.strip().splitlines()}
                    ids = {n.node_id for n in group.nodes}
                    return "handshake" not in text and "noaddr" not in text and known == ids

                await wait_until(knows_all, deadline_s, f"node {node.port} sees every node")
        for i, replica in enumerate(group.replicas):
            master = group.masters[i % masters]
            async with replica.client() as c:
                await c.execute_command("CLUSTER", "REPLICATE", master.node_id)
        for replica in group.replicas:
            async with replica.client() as c:

                async def linked(c: aioredis.Redis = c) -> bool:
                    info = await c.info("replication")
                    return bool(info.get("master_link_status") == "up")

                await wait_until(linked, deadline_s, f"replica {replica.port} linked")
        await group.wait_healthy(deadline_s)
    except BaseException:
        group.stop()
        raise
    return group
