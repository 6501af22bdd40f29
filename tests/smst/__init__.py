"""Tests of the Sparse Merkle Sum Trie (relayminer.smst.trie*, relayminer.smst.gob)."""
