"""Operator keys from a keys file (the Go miner's ``keys_file``) or a BIP-39 mnemonic.

The keys file is YAML with one list, ``keys: ["0x<64 hex>", "<64 hex>", ...]`` (``0x``
optional, case-insensitive). :class:`KeysFile` reloads it when its modification time changes.
Every error names the file and the line, never the content: a bad line may be a private key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from relayminer.chain.pocket.keys import InvalidKeyError, PocketKey
from relayminer.errors import RelayMinerError

__all__ = ["KeySourceError", "KeysFile", "load_keys_file", "mnemonic_keys", "read_secret"]


class KeySourceError(RelayMinerError):
    """A key source (file, mnemonic, keyring) could not be read. Never holds key material."""


def load_keys_file(path: Path) -> list[PocketKey]:
    """Parse a keys file; errors name ``path`` and the 1-based line, never the text."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise KeySourceError(f"keys file {path}: cannot read: {type(err).__name__}") from None
    try:
        root = yaml.compose(text)
    except yaml.MarkedYAMLError as err:
        line = err.problem_mark.line + 1 if err.problem_mark is not None else 0
        raise KeySourceError(f"keys file {path}: line {line}: not valid YAML") from None
    except yaml.YAMLError:
        raise KeySourceError(f"keys file {path}: not valid YAML") from None
    if not isinstance(root, yaml.MappingNode):
        raise KeySourceError(f"keys file {path}: expected a mapping with a 'keys' list")
    entries: yaml.Node | None = None
    for key_node, value_node in root.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == "keys":
            entries = value_node
    if not isinstance(entries, yaml.SequenceNode) or not entries.value:
        raise KeySourceError(f"keys file {path}: 'keys' must be a non-empty list")
    keys: list[PocketKey] = []
    for node in entries.value:
        line = node.start_mark.line + 1
        if not isinstance(node, yaml.ScalarNode):
            raise KeySourceError(f"keys file {path}: line {line}: not a hex private key")
        try:
            keys.append(PocketKey.from_hex(str(node.value)))
        except InvalidKeyError as err:
            raise KeySourceError(f"keys file {path}: line {line}: {err}") from None
    return keys


@dataclass
class KeysFile:
    """A keys file, re-read when its mtime (or size) changes.

    A reload that fails keeps the previous keys and re-raises: the operator sees the error and
    the miner keeps signing with what it had.
    """

    path: Path
    _stamp: tuple[int, int] | None = None
    _keys: tuple[PocketKey, ...] = ()

    def _current_stamp(self) -> tuple[int, int]:
        try:
            st = os.stat(self.path)
        except OSError as err:
            raise KeySourceError(f"keys file {self.path}: {type(err).__name__}") from None
        return (st.st_mtime_ns, st.st_size)

    def current(self) -> tuple[PocketKey, ...]:
        """The keys, reloaded first if the file changed since the last read."""
        stamp = self._current_stamp()
        if stamp != self._stamp:
            loaded = tuple(load_keys_file(self.path))
            self._keys, self._stamp = loaded, stamp
        return self._keys


def read_secret(*, env: str | None = None, file: Path | None = None, what: str) -> str:
    """A secret from an environment variable name or a file path (never from config text)."""
    if env:
        value = os.environ.get(env)
        if not value:
            raise KeySourceError(f"{what}: environment variable {env} is not set")
        return value
    if file is not None:
        try:
            return file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            raise KeySourceError(f"{what}: cannot read {file}: {type(err).__name__}") from None
    raise KeySourceError(f"{what}: neither an environment variable nor a file is configured")


def mnemonic_keys(mnemonic: str, *, account: int = 0, count: int = 1) -> list[PocketKey]:
    """Keys at ``m/44'/118'/account'/0/i`` for ``i`` in ``0..count-1``."""
    if count < 1:
        raise KeySourceError("mnemonic: count must be >= 1")
    try:
        return [PocketKey.from_mnemonic(mnemonic, account, i) for i in range(count)]
    except InvalidKeyError as err:
        raise KeySourceError(f"mnemonic: {err}") from None
