"""The operator keys the miner signs with, keyed by address, and the start-up check that every
configured supplier has one."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from relayminer.chain.pocket.keys import PocketKey
from relayminer.errors import RelayMinerError

__all__ = ["KeySet", "MissingSupplierKeyError", "check_supplier_keys"]


class MissingSupplierKeyError(RelayMinerError):
    """A configured supplier has no signing key: the miner refuses to start."""

    def __init__(self, suppliers: list[str]) -> None:
        names = ", ".join(suppliers)
        super().__init__(
            f"no signing key for supplier(s) {names}: add the operator key to the keys file, "
            "mnemonic or keyring configured under chain.keys"
        )
        self.suppliers = suppliers


class KeySet(Mapping[str, PocketKey]):
    """Keys by ``pokt`` address. Later sources win on duplicates (as the Go miner)."""

    def __init__(self, keys: Iterable[PocketKey] = ()) -> None:
        self._keys: dict[str, PocketKey] = {}
        self.add(keys)

    def add(self, keys: Iterable[PocketKey]) -> None:
        for key in keys:
            self._keys[key.address()] = key

    def __getitem__(self, address: str) -> PocketKey:
        return self._keys[address]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"KeySet({sorted(self._keys)!r})"


def check_supplier_keys(suppliers: Iterable[str], keyset: Mapping[str, PocketKey]) -> None:
    """Raise :class:`MissingSupplierKeyError` naming every supplier without a key."""
    missing = sorted({s for s in suppliers if s not in keyset})
    if missing:
        raise MissingSupplierKeyError(missing)
