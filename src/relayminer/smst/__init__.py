"""The Sparse Merkle Sum Trie, byte-exact with pokt-network/smt.

Pure: ``trie`` (SparseMerkleSumTrie), ``nodes`` (node encodings), ``proof`` (closest proofs),
``gob`` (Go gob codec of proofs), ``mapstore`` (the node store interface).
I/O: ``redis_store`` (trees persisted in Redis).
"""
