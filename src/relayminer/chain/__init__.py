"""The chain, as the miner sees it.

``base`` holds the :class:`Chain` protocol and its value types. Implementations live in
subpackages: ``sim`` (the simulated chain, a development tool) and, later, ``pocket``.
"""
