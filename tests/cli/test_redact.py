"""No URL credential in any text relayminer prints: the redaction itself and the log formatters."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from relayminer.logs import JsonFormatter, LogfmtFormatter
from relayminer.logs.redact import MASK, redact_text, redact_url

SECRET = "s3cr3t-pw"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"redis://miner:{SECRET}@10.0.0.5:6379/0", "redis://miner:***@10.0.0.5:6379/0"),
        (f"redis://:{SECRET}@10.0.0.5:6379", "redis://:***@10.0.0.5:6379"),
        (
            f"rediss://default:{SECRET}@redis.example:6380/2",
            "rediss://default:***@redis.example:6380/2",
        ),
        (
            f"unix:///run/redis.sock?db=1&password={SECRET}",
            "unix:///run/redis.sock?db=1&password=***",
        ),
        (f"unix://user:{SECRET}@/run/redis.sock", "unix://user:***@/run/redis.sock"),
        (
            f"redis-sentinel://:{SECRET}@h1:26379,h2:26379/mymaster/0",
            "redis-sentinel://:***@h1:26379,h2:26379/mymaster/0",
        ),
        (
            f"redis-cluster://:{SECRET}@h1:7000,h2:7001",
            "redis-cluster://:***@h1:7000,h2:7001",
        ),
        (f"redis://:pa/ss{SECRET}@h:1/0", "redis://:***@h:1/0"),  # an unencoded '/' too
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),  # nothing to hide
        (
            "redis://user@127.0.0.1:6379",
            "redis://***@127.0.0.1:6379",
        ),  # a lone user info may be a password
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert SECRET not in redact_url(url)


def test_redact_text_keeps_the_rest_of_the_line() -> None:
    line = f"cannot reach redis://:{SECRET}@h:1/0 (refused); then rediss://u:{SECRET}@x:2 too"
    out = redact_text(line)
    assert out == "cannot reach redis://:***@h:1/0 (refused); then rediss://u:***@x:2 too"
    assert redact_text(f"password={SECRET} sentinel_password={SECRET}") == (
        f"password={MASK} sentinel_password={MASK}"
    )
    assert redact_text("height=5 supplier=pokt1a") == "height=5 supplier=pokt1a"
    assert redact_text("plain words") == "plain words"


def _record(msg: str, extra: dict[str, object], exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ConnectionError(f"Error connecting to redis://:{SECRET}@h:1/0")
        except ConnectionError:
            exc_info = sys.exc_info()
    record = logging.LogRecord("relayminer.test", logging.ERROR, "f", 1, msg, (), exc_info)
    record.__dict__.update(extra)
    return record


@pytest.mark.parametrize("formatter", [LogfmtFormatter(), JsonFormatter()])
def test_log_lines_never_carry_a_url_password(formatter: logging.Formatter) -> None:
    record = _record(
        f"connecting to redis://miner:{SECRET}@h:6379/0",
        {"url": f"rediss://:{SECRET}@h:6380", "socket": f"unix:///s.sock?password={SECRET}"},
        exc=True,
    )
    line = formatter.format(record)
    assert SECRET not in line
    assert "redis://miner:***@h:6379/0" in line and "rediss://:***@h:6380" in line
    assert "ConnectionError" in line  # the traceback is kept, redacted
    if isinstance(formatter, JsonFormatter):
        doc = json.loads(line)
        assert doc["url"] == "rediss://:***@h:6380"
