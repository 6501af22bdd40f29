"""Sessions: the model and codecs, and their Redis storage and accounting.

``model`` (SessionState, SessionSnapshot, hash and legacy-JSON codecs; pure), ``timefmt``
(Go RFC3339Nano), ``store`` (RedisSessionStore), ``dedup`` (RedisDeduplicator), ``coordinator``
(SessionCoordinator), ``scripts`` (the Lua scripts).
"""
