"""The chain, as the miner sees it.

``base`` holds the :class:`Chain` protocol and its value types; ``rejections`` classifies a
node's answers; ``settings`` the ``chain:`` configuration (one model per chain type);
``factory`` builds the chain a configuration names. Implementations live in subpackages:
``sim`` (the simulated chain, a development tool) and, later, ``pocket``.
"""
