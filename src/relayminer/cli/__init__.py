"""The ``relayminer`` command line (click); ``relayminer.cli:main`` is the entry point.

One module per command group: :mod:`~relayminer.cli.serve` (``run``, ``worker``),
:mod:`~relayminer.cli.demo`, :mod:`~relayminer.cli.inspect`, :mod:`~relayminer.cli.localnet`,
:mod:`~relayminer.cli.status`;
:mod:`~relayminer.cli.failures` (one-line errors and exit codes),
:mod:`~relayminer.cli.signals` (SIGINT/SIGTERM) and :mod:`~relayminer.cli.startup` (start-up
checks) serve them all.
"""

# Importing the command modules registers their commands on ``main``.
import relayminer.cli.demo
import relayminer.cli.inspect
import relayminer.cli.localnet
import relayminer.cli.serve
import relayminer.cli.status  # noqa: F401
from relayminer.cli.app import main

__all__ = ["main"]
