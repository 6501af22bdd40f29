"""``relayminer localnet``: the simulated chain behind a real node's protocols (a dev tool).

A Pocket node double on loopback: CometBFT RPC v0.38 (HTTP JSON-RPC, GET URIs, websocket) and
Cosmos SDK 0.53 gRPC (pocket module queries, auth, bank, tx service), with the SDK's ante rules
(signatures, account numbers, sequences, unordered txs, fees) in front of the simulated chain's
claim, proof and settlement rules. See ``docs/localnet.md``.

Modules: ``genesis`` (configuration), ``crypto``, ``txcodec``, ``ante``, ``codes``, ``accounts``,
``store``, ``events``, ``app`` (CheckTx, Simulate, blocks), ``queries``, ``grpc_server``,
``comet`` (JSON shapes), ``rpc_server``, ``node`` (LocalNode), ``command`` (the click command).
"""
