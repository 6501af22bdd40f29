"""Read-only views of what a deployment holds in Redis.

:mod:`~relayminer.inspection.views`: per supplier sessions, SMSTs and streams (``relayminer
inspect``); :mod:`~relayminer.inspection.status`: one snapshot of the whole deployment -
replicas and their leases, stream health, sessions by window, latest claim and proof
outcomes, the chain (``relayminer status``).
"""

from relayminer.inspection.views import (
    Row,
    SessionRow,
    SmstRow,
    StreamRow,
    find_suppliers,
    inspect_sessions,
    inspect_smst,
    inspect_streams,
    rows_as_dict,
)

__all__ = [
    "Row",
    "SessionRow",
    "SmstRow",
    "StreamRow",
    "find_suppliers",
    "inspect_sessions",
    "inspect_smst",
    "inspect_streams",
    "rows_as_dict",
]
