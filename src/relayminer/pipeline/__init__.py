"""The relay pipeline: stream entries in, counted relays out.

``relays`` (MinedRelayMessage wire format), ``publisher`` (XADD, as the Go relayers do),
``consumer`` (consumer group, reclaim, dead letters), ``worker`` (RelayWorker).
"""
