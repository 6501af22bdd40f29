"""Go ``time.RFC3339Nano`` timestamps, as the Go miners write them in session hashes.

Written: UTC, fractional seconds with trailing zeros trimmed (no dot when the fraction is zero),
``Z`` suffix. Read: 0 to 9 fractional digits and ``Z`` or a ``±hh:mm`` offset; digits past the
microsecond are truncated (Python datetimes hold microseconds). Go's zero time
(``0001-01-01T00:00:00Z``) reads as ``None``.

>>> from datetime import datetime, timezone
>>> format_rfc3339nano(datetime(2026, 8, 20, 12, 0, 0, 123400, tzinfo=timezone.utc))
'2026-08-20T12:00:00.1234Z'
>>> parse_rfc3339nano("2026-08-20T12:00:00.123456789+02:00").isoformat()
'2026-08-20T12:00:00.123456+02:00'
>>> parse_rfc3339nano("0001-01-01T00:00:00Z") is None
True
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$"
)
_GO_ZERO = datetime(1, 1, 1, tzinfo=UTC)


def format_rfc3339nano(value: datetime) -> str:
    """Format an aware datetime as Go RFC3339Nano, in UTC."""
    if value.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    utc = value.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += "." + f"{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_rfc3339nano(text: str) -> datetime | None:
    """Parse Go RFC3339Nano; ``None`` for the Go zero time. Raises ValueError otherwise."""
    match = _RFC3339.match(text)
    if match is None:
        raise ValueError(f"not an RFC3339 timestamp: {text!r}")
    frac = match.group(7) or ""
    head = text[: match.start(7) - 1] if frac else text[: match.start(8)]
    micro = (frac + "000000")[:6]
    zone = match.group(8)
    iso = f"{head}.{micro}{'+00:00' if zone == 'Z' else zone}"
    parsed = datetime.fromisoformat(iso)
    if parsed == _GO_ZERO:
        return None
    return parsed


def utc_now() -> datetime:
    return datetime.now(UTC)
