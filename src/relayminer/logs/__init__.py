"""Structured logging on the standard library: ``key=value`` lines (or JSON) with extras.

Call sites log with ``extra={...}``; every extra field is rendered, so log lines stay greppable:

    2026-11-24T07:00:00.123Z WARNING relayminer.pipeline.worker dead-lettered entry supplier=p1
    reason="..."

Every formatted line - message, extras and traceback - goes through
:func:`~relayminer.logs.redact.redact_text`, so a Redis URL's password never reaches a log,
whichever call site (ours or a library's) put the URL there.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from relayminer.logs.redact import redact_text

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


def _fmt_value(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "='):
        return json.dumps(text)
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = (
            f"{ts}.{int(record.msecs):03d}Z {record.levelname} {record.name} {record.getMessage()}"
        )
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={_fmt_value(v)}" for k, v in extras.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact_text(line)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": record.created,
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            **{
                k: v if isinstance(v, int | float | bool | None) else str(v)
                for k, v in _extras(record).items()
            },
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return redact_text(json.dumps(doc))


def configure_logging(level: str = "INFO", *, json_lines: bool = False) -> None:
    """Route every log record to stderr, one structured line each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
