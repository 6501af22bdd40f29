"""Protocol maths, pure: session windows, Go math/rand, the proof requirement, relay difficulty.

Modules: ``windows`` (SharedParams and every window height), ``gorand`` (Go math/rand v1),
``proof_requirement`` (proof params, claim sample, rewards), ``relay_difficulty``.
No I/O here; everything is a function of its arguments.
"""
