"""Fault-injection toolkit for reliability tests (reusable by later issues).

- :class:`PrivateServer`: a real server of the test's own (never the shared one), restartable
  empty or from its AOF, with helpers for ``maxmemory`` and ``maxmemory-policy``;
- :class:`TcpProxy`: a loopback asyncio TCP proxy in front of a server that can cut every
  connection or stall traffic, to exercise the clients' error paths;
- :func:`until`: poll a real condition with a bounded deadline (never a bare sleep).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import OutOfMemoryError

from relayminer.runtime.embedded import RedisServerProcess, free_loopback_port, start_server

AOF_ARGS = ("--appendonly", "yes", "--appendfsync", "always")


class PrivateServer:
    """A real server for one fault test, on its own port and directory."""

    def __init__(self, workdir: Path, *, aof: bool = False) -> None:
        self.workdir = workdir
        self.aof = aof
        self.process: RedisServerProcess = start_server(workdir=workdir, extra_args=self._args())
        self.port = self.process.port
        self.url = self.process.url

    def _args(self) -> tuple[str, ...]:
        return AOF_ARGS if self.aof else ("--save", "")

    def client(self, **kw: object) -> aioredis.Redis:
        return aioredis.Redis.from_url(self.url, protocol=2, decode_responses=False, **kw)  # type: ignore[arg-type]

    def restart(self, *, empty: bool) -> None:
        """kill -9 the server and start it again on the same port: ``empty`` drops its data
        directory first (a restart without persistence), otherwise it reloads its AOF."""
        self.process.kill()
        if empty:
            for item in self.workdir.rglob("*"):
                if item.is_file() and item.suffix != ".sock":
                    item.unlink()
        self.process = start_server(
            self.process.binary, port=self.port, workdir=self.workdir, extra_args=self._args()
        )

    def stop(self) -> None:
        self.process.stop()


async def set_maxmemory(
    client: aioredis.Redis, limit: int | str, policy: str = "noeviction"
) -> None:
    await client.config_set("maxmemory-policy", policy)
    await client.config_set("maxmemory", str(limit))


async def fill_memory_until_oom(client: aioredis.Redis, chunk: int = 64 * 1024) -> int:
    """Write ballast until the server answers OOM (``maxmemory`` must be set); returns the
    number of ballast keys written."""
    n = 0
    while True:
        try:
            await client.set(f"ballast:{n}", b"x" * chunk)
        except OutOfMemoryError:
            return n
        n += 1


async def until(
    condition: Callable[[], Awaitable[bool]],
    *,
    deadline_s: float = 10.0,
    what: str = "condition",
) -> None:
    """Poll ``condition`` until true; fail after ``deadline_s`` seconds."""
    deadline = time.monotonic() + deadline_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class TcpProxy:
    """Loopback TCP proxy: ``cut()`` closes every open connection; ``stall()`` holds traffic
    (connections stay open, nothing is forwarded) until ``resume()``."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_loopback_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.connections = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    def cut(self) -> None:
        for w in list(self._writers):
            w.close()
        self._writers.clear()

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
