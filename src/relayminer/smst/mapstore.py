"""The node store behind a Sparse Merkle Sum Trie: a small dict-like interface.

Keys are 48-byte node digests, values are node preimages (docs/smst.md). The trie reads
with :meth:`MapStore.get` when it loads a node lazily and writes only from ``commit()``, with
:meth:`MapStore.delete` (orphans) followed by :meth:`MapStore.set` (new nodes).

>>> store = MemoryMapStore()
>>> store.set(b"k", b"v")
>>> store.get(b"k"), store.get(b"x"), len(store)
(b'v', None, 1)
>>> store.delete(b"k"); store.delete(b"k")  # deleting an absent key is a no-op
>>> len(store)
0
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from itertools import repeat
from typing import Protocol, runtime_checkable

__all__ = ["BatchMapStore", "MapStore", "MemoryMapStore", "apply_changes"]


@runtime_checkable
class MapStore(Protocol):
    """Key-value store of trie nodes (Go ``kvstore.MapStore``)."""

    def get(self, key: bytes) -> bytes | None:
        """The value stored under ``key``, or ``None`` when absent."""
        ...

    def set(self, key: bytes, value: bytes) -> None:
        """Store ``value`` under ``key``, replacing any previous value."""
        ...

    def delete(self, key: bytes) -> None:
        """Remove ``key``; removing an absent key is not an error."""
        ...

    def __len__(self) -> int: ...

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        """Every ``(key, value)`` pair, in no particular order."""
        ...


@runtime_checkable
class BatchMapStore(MapStore, Protocol):
    """A :class:`MapStore` that also takes many deletes or writes in one call (optional)."""

    def delete_many(self, keys: Iterable[bytes]) -> None:
        """:meth:`delete` each key, in order."""
        ...

    def set_many(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        """:meth:`set` each pair, in order."""
        ...


def apply_changes(
    store: MapStore, deletes: Sequence[bytes], keys: Sequence[bytes], values: Sequence[bytes]
) -> None:
    """Apply a trie commit to ``store``: every delete, then ``set(keys[i], values[i])`` for
    each ``i``, in order. Uses the batch methods of a :class:`BatchMapStore`, else one call
    per key.
    """
    if isinstance(store, BatchMapStore):
        if deletes:
            store.delete_many(deletes)
        if keys:
            store.set_many(zip(keys, values, strict=True))
        return
    for key in deletes:
        store.delete(key)
    for key, value in zip(keys, values, strict=True):
        store.set(key, value)


class MemoryMapStore:
    """A :class:`MapStore` backed by a ``dict`` (Go ``simplemap``)."""

    __slots__ = ("_data",)

    def __init__(self, data: Iterable[tuple[bytes, bytes]] = ()) -> None:
        self._data: dict[bytes, bytes] = dict(data)

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        self._data[key] = value

    def delete(self, key: bytes) -> None:
        self._data.pop(key, None)

    def delete_many(self, keys: Iterable[bytes]) -> None:
        deque(map(self._data.pop, keys, repeat(None)), maxlen=0)

    def set_many(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        self._data.update(items)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._data)

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        return self._data.items()

    def copy(self) -> MemoryMapStore:
        """A shallow copy (keys and values are immutable bytes)."""
        return MemoryMapStore(self._data.items())

    def __repr__(self) -> str:
        return f"MemoryMapStore({len(self._data)} entries)"
