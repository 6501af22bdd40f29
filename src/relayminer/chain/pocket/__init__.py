"""Pocket Network (Shannon) chain client: keys, tx signing, gRPC queries, CometBFT blocks."""
