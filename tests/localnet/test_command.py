"""``relayminer localnet`` as a process: the ready line, the endpoints answering, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[2]
SCRIPT = "from relayminer.chain.sim.node.command import localnet_command; localnet_command()"


async def test_process_prints_ready_line_and_serves(real_server: object) -> None:
    import redis.asyncio as aioredis

    # a database of its own: other tests flush and reuse the server's default one
    base = getattr(real_server, "url")  # noqa: B009 - fixture dataclass
    url = re.sub(r"/\d+$", "", base.rstrip("/")) + "/9"
    client = aioredis.Redis.from_url(url)
    await client.flushdb()
    await client.aclose()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SCRIPT,
        "--config",
        str(REPO / "localnet.example.yaml"),
        "--redis-url",
        url,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        # the ready line (or an empty line if the process dies first)
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        ready = json.loads(line)
        assert ready["chain_id"] == "pocket" and ready["rpc"].startswith("http://127.0.0.1:")
        assert ready["grpc"].startswith("127.0.0.1:") and ready["websocket"].endswith("/websocket")
        async with aiohttp.ClientSession() as http, http.get(f"{ready['rpc']}/status") as r:
            assert (await r.json())["result"]["node_info"]["network"] == "pocket"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode(errors="replace")
