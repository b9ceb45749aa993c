"""A bounded cache of loaded checkpoints, least recently used out first.

The warm sampler installs one around each job (`worker.rank_inputs.checkpoint_cache`), so
`load_checkpoint_of` downloads and deserialises a checkpoint once and later jobs on it reuse
the tensors already on the device. Keys name the stored object and its sha256, so a
checkpoint written again under the same key (a rerun) is a different entry, and the device.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class LoadedCache(Generic[V]):
    """At most `capacity` values; `get_or_load` loads on a miss and evicts the oldest use."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a cache holds at least one entry, got {capacity}")
        self.capacity = capacity
        self._entries: OrderedDict[Hashable, V] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get_or_load(self, key: Hashable, load: Callable[[], V]) -> V:
        if key in self._entries:
            self._entries.move_to_end(key)
            self.hits += 1
            return self._entries[key]
        self.misses += 1
        value = load()  # a load that raises caches nothing
        self._entries[key] = value
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return value

    def keys(self) -> list[Hashable]:
        """Oldest use first."""
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
