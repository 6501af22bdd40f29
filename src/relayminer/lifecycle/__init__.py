"""The claim/proof lifecycle of every session.

``rules`` (the transition table; pure), ``manager`` (LifecycleManager: one pass per block),
``rebroadcast`` (inclusion records for the reconciler).
"""
