"""Credential redaction for URLs and free text.

A Redis URL may carry a password (``redis://user:pass@host``, ``redis://:pass@host``,
``rediss://...``, ``unix:///path.sock?password=...``, the Go miner's ``redis-sentinel://`` and
``redis-cluster://`` schemes with several hosts). Nothing the program prints - log lines, error
messages, CLI output, exception text shown to an operator - may contain it, so every such
path goes through :func:`redact_text` (or :func:`redact_url` for a URL held on its own).

Only the secret is replaced; scheme, user name, hosts, database and path stay readable, so an
error still says *which* server failed:

>>> redact_url("redis://miner:s3cret@10.0.0.5:6379/0")
'redis://miner:***@10.0.0.5:6379/0'
>>> redact_url("redis://:s3cret@10.0.0.5:6379")
'redis://:***@10.0.0.5:6379'
>>> redact_url("redis://s3cret@10.0.0.5:6379")
'redis://***@10.0.0.5:6379'
>>> redact_url("unix:///run/redis.sock?db=1&password=s3cret")
'unix:///run/redis.sock?db=1&password=***'
>>> redact_text("cannot reach redis-sentinel://:pw@h1:26379,h2:26379/mymaster: refused")
'cannot reach redis-sentinel://:***@h1:26379,h2:26379/mymaster: refused'
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["MASK", "redact_text", "redact_url"]

MASK: Final = "***"

# scheme://[user:]secret@  - everything between the user's ':' (or the scheme, when the user
# info has no ':') and the last '@' of the token is hidden: Redis URLs put a lone password
# there (``redis://secret@host`` is a password to some clients), a mistyped password holding
# '/' or '#' is still hidden; redacting too much is harmless, too little is a leak.
_USERINFO: Final = re.compile(
    r"(?P<prefix>\b[a-zA-Z][a-zA-Z0-9+.\-]*://(?:[^:@/\s]*:)?)(?P<secret>[^\s'\"]+)(?=@)"
)
# password=... (also passwd=, pass=, pwd=, secret=): a URL query parameter or a key=value
_QUERY: Final = re.compile(
    r"(?P<prefix>\b(?:password|passwd|pass|pwd|secret|sentinel_password)=)"
    r"(?P<secret>[^&#\s'\"]+)",
    re.IGNORECASE,
)


def redact_text(text: str) -> str:
    """``text`` with the secret of every URL it contains replaced by ``***``."""
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: m.group("prefix") + MASK, text)
    return _QUERY.sub(lambda m: m.group("prefix") + MASK, text)


def redact_url(url: str) -> str:
    """One URL with its password (user info or query parameter) replaced by ``***``."""
    return redact_text(url)
