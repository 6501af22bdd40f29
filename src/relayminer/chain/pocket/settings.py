"""``chain:`` configuration block when ``type: pocket``: the models live with the other chain
settings in :mod:`relayminer.chain.settings` (so loading a configuration imports no chain
client); this module keeps their names importable from the client's package."""

from __future__ import annotations

from relayminer.chain.settings import (
    KeyringSettings,
    KeySources,
    MnemonicSettings,
    PocketChainSettings,
)

__all__ = ["KeySources", "KeyringSettings", "MnemonicSettings", "PocketChainSettings"]
