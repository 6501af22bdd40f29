"""Which storage layout a deployment's session trees use (``smst.layout`` in the config).

``journal`` (the default) persists each session's leaves only and builds trees when they are
needed (docs/leaf-journal.md); ``go`` keeps the Go miner's node layout (``:nodes`` +
``:live_root``, committed by the worker, plus the Go dedup set) for deployments that mix Go and
Python miners on the same suppliers. The relay worker and the lifecycle of one deployment must
use the same layout: the configuration decides it once and hands it to both.
"""

from __future__ import annotations

import enum

__all__ = ["DEFAULT_LAYOUT", "SMSTLayout"]


class SMSTLayout(enum.StrEnum):
    JOURNAL = "journal"
    GO = "go"


#: The one default of every component that takes a layout (worker, lifecycle, config).
DEFAULT_LAYOUT = SMSTLayout.JOURNAL
