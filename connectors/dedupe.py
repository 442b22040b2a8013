"""A bounded, least-recently-used set: the cheap edge dedupe of recently acked messages."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable


class RecentKeys:
    """Remembers at most `size` keys; the oldest are forgotten first. Not thread-safe."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._keys: OrderedDict[Hashable, None] = OrderedDict()

    def __contains__(self, key: Hashable) -> bool:
        if key in self._keys:
            self._keys.move_to_end(key)
            return True
        return False

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, keys: Iterable[Hashable]) -> None:
        """Remember `keys`, forgetting the least recently seen ones beyond `size`."""
        if self.size <= 0:
            return
        for key in keys:
            self._keys[key] = None
            self._keys.move_to_end(key)
        while len(self._keys) > self.size:
            self._keys.popitem(last=False)
