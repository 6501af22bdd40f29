"""``relayminer demo``: the whole system on one machine, from relays to settled rewards.

:mod:`~relayminer.demo.runner` runs it (see its docstring for the world it builds and what
"success" means); :mod:`~relayminer.demo.display` renders the live progress and the summary.
"""

from relayminer.demo.display import (
    ConsoleLogHandler,
    interactive_console,
    render_progress,
    render_summary,
    with_live_display,
)
from relayminer.demo.runner import (
    DEMO_APPLICATIONS,
    DEMO_SERVICES,
    DemoError,
    DemoOptions,
    DemoProgress,
    DemoSummary,
    ProgressSink,
    demo_config,
    run_demo,
    supplier_addresses,
)

__all__ = [
    "DEMO_APPLICATIONS",
    "DEMO_SERVICES",
    "ConsoleLogHandler",
    "DemoError",
    "DemoOptions",
    "DemoProgress",
    "DemoSummary",
    "ProgressSink",
    "demo_config",
    "interactive_console",
    "render_progress",
    "render_summary",
    "run_demo",
    "supplier_addresses",
    "with_live_display",
]
