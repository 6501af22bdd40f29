"""Every command fails with one line naming the cause and the fix, the right exit code, and no
URL password anywhere in its output (issue 14 item 1, issue 10 item 7)."""

from __future__ import annotations

import errno
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from redis import exceptions as redis_errors

from relayminer.cli import main
from relayminer.cli.failures import (
    EXIT_CONFIG,
    EXIT_RUNTIME,
    CliFailure,
    describe,
    one_line,
    report_failures,
)
from relayminer.config import ConfigError
from relayminer.errors import StoreError
from relayminer.runtime.embedded import free_loopback_port

SECRET = "s3cr3t-pw"


def closed_url(form: str = "redis") -> str:
    port = free_loopback_port()
    return {
        "redis": f"redis://:{SECRET}@127.0.0.1:{port}/0",
        "user": f"redis://miner:{SECRET}@127.0.0.1:{port}/0",
        "unix": f"unix:///nonexistent/relayminer.sock?password={SECRET}",
    }[form]


def assert_one_line(output: str, prefix: str) -> str:
    assert output.endswith("\n") and output.count("\n") == 1, output
    assert output.startswith(prefix + ": "), output
    assert "Traceback" not in output
    assert SECRET not in output
    return output


COMMANDS = [
    ["worker", "--supplier", "pokt1a", "--redis-url"],
    ["demo", "--json", "--redis-url"],
    ["inspect", "sessions", "--redis-url"],
    ["inspect", "smst", "--redis-url"],
    ["inspect", "streams", "--redis-url"],
    ["status", "--redis-url"],
    ["status", "--json", "--watch", "--redis-url"],
]


@pytest.mark.parametrize("form", ["redis", "user", "unix"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: "-".join(c[:2]))
def test_unreachable_redis_is_one_redacted_line_exit_1(command: list[str], form: str) -> None:
    url = closed_url(form)
    result = CliRunner().invoke(main, [*command, url])
    assert result.exit_code == EXIT_RUNTIME
    assert result.stdout == ""
    name = " ".join(c for c in command[:2] if not c.startswith("-"))
    line = assert_one_line(result.stderr, f"relayminer {name}")
    assert "cannot reach Redis at " in line and "check that the server is running" in line
    assert ("***" in line) and url.replace(SECRET, "***") in line


def test_run_with_unreachable_redis_exits_1_within_10_seconds(tmp_path: Path) -> None:
    path = tmp_path / "miner.yaml"
    url = closed_url("user")
    path.write_text(yaml.safe_dump({"suppliers": ["pokt1a"], "redis": {"url": url}}))
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "relayminer", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert time.monotonic() - started < 10
    assert proc.returncode == EXIT_RUNTIME
    assert proc.stdout == ""
    assert_one_line(proc.stderr, "relayminer run")
    assert url.replace(SECRET, "***") in proc.stderr


@pytest.mark.parametrize("command", COMMANDS[:1] + COMMANDS[2:3] + COMMANDS[5:6])
def test_unparseable_url_is_a_usage_error(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, f"mongodb://:{SECRET}@h:1"])
    assert result.exit_code == EXIT_CONFIG
    line = assert_one_line(result.stderr, "relayminer " + " ".join(command[:2]).split(" -")[0])
    assert "invalid Redis URL mongodb://:***@h:1" in line


def test_invalid_config_is_one_line_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "miner.yaml"
    doc = {"suppliers": ["pokt1a"], "worker": {"max_retries": -1, "batch_size": 0}}
    path.write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(main, ["run", "--config", str(path)])
    assert result.exit_code == EXIT_CONFIG
    line = assert_one_line(result.stderr, "relayminer run")
    assert "worker.max_retries: Input should be greater than or equal to 0" in line
    assert "worker.batch_size" in line
    missing = CliRunner().invoke(main, ["run", "--config", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == EXIT_CONFIG
    assert_one_line(missing.stderr, "relayminer run")


def test_usage_errors_exit_2() -> None:
    result = CliRunner().invoke(main, ["worker", "--redis-url", "redis://h"])  # no --supplier
    assert result.exit_code == 2
    assert "Missing option '--supplier'" in result.stderr
    assert CliRunner().invoke(main, ["no-such-command"]).exit_code == 2


def test_debug_shows_the_traceback_redacted() -> None:
    url = closed_url("redis")
    result = CliRunner().invoke(main, ["--debug", "inspect", "sessions", "--redis-url", url])
    assert result.exit_code == EXIT_RUNTIME
    assert "Traceback" in result.stderr
    assert SECRET not in result.stderr
    assert result.stderr.rstrip("\n").splitlines()[-1].startswith("relayminer inspect sessions: ")


def test_version() -> None:
    from importlib.metadata import version

    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"relayminer, version {version('relayminer')}\n"


def test_shell_completion_script_is_generated() -> None:
    """docs/operations.md: eval "$(_RELAYMINER_COMPLETE=bash_source relayminer)"."""
    script = subprocess.run(
        [str(Path(sys.executable).parent / "relayminer")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"_RELAYMINER_COMPLETE": "bash_source", "PATH": "/usr/bin:/bin"},
    )
    assert script.returncode == 0, script.stderr
    assert "_relayminer_completion" in script.stdout
    assert "complete " in script.stdout


# --- the mapping itself ---------------------------------------------------------------------


def _raise_from(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as err:
            raise outer from err
    except BaseException as err:
        return err


@pytest.mark.parametrize(
    ("err", "code", "needle"),
    [
        (CliFailure("already phrased", 2), 2, "already phrased"),
        (ConfigError("invalid configuration:\n  a: bad"), 2, "invalid configuration"),
        (
            _raise_from(StoreError("save failed"), redis_errors.ConnectionError("refused")),
            1,
            "lost the Redis connection (StoreError: save failed: ConnectionError: refused)",
        ),
        (redis_errors.TimeoutError("Timeout reading"), 1, "lost the Redis connection"),
        (redis_errors.AuthenticationError("WRONGPASS"), 1, "refused the credentials"),
        (redis_errors.NoPermissionError("NOPERM xadd"), 1, "denied a command"),
        (OSError(errno.EADDRINUSE, "Address already in use"), 1, "address already in use"),
        (StoreError("broken"), 1, "StoreError: broken"),
        (redis_errors.ResponseError("WRONGTYPE"), 1, "ResponseError: WRONGTYPE"),
        (RuntimeError("boom"), 1, "internal error: RuntimeError: boom (run with --debug"),
    ],
)
def test_describe(err: BaseException, code: int, needle: str) -> None:
    failure = describe(err)
    assert failure.exit_code == code
    assert needle in failure.message


def test_report_failures_exits_with_the_code_and_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited, report_failures("relayminer x"):
        raise StoreError(f"cannot write to redis://:{SECRET}@h:1\nsecond line")
    assert exited.value.code == EXIT_RUNTIME
    err = capsys.readouterr().err
    assert err == "relayminer x: StoreError: cannot write to redis://:***@h:1 second line\n"
    with pytest.raises(SystemExit) as interrupted, report_failures("relayminer x"):
        raise KeyboardInterrupt
    assert interrupted.value.code == 130
    assert capsys.readouterr().err == "relayminer x: interrupted\n"


def test_one_line() -> None:
    assert one_line("a\n  b\tc  ") == "a b c"
