"""Tests of the Sparse Merkle Sum Trie (relayminer.smst*, relayminer.gob)."""
