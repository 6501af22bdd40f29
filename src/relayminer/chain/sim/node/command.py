"""``relayminer localnet``: the command lives with the other commands in
:mod:`relayminer.cli.localnet`; this name stays for callers that import it from the node."""

from __future__ import annotations

from relayminer.cli.localnet import localnet as localnet_command

__all__ = ["localnet_command"]
