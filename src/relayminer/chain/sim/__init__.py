"""The simulated chain: a development and test tool, not part of the product's path.

``chain`` (SimulatedChain, state shared in Redis), ``config``, ``rules`` (CheckTx/DeliverTx and
settlement), ``sessions``, ``state``, ``errors``; ``relay_builder`` and ``loadgen`` make Go-format
relays for demos and tests.
"""
