"""Loaded networks kept between calls: an LRU bounded by the memory their weights take.

A long-lived process (the studio's worker) runs many small jobs with the same few networks; loading
one (reading and checking the file, building the module) costs more than a small job itself (#21:
0.179 s against 0.072 s per 32 px job). :func:`cached` keeps what a loader returned under a key,
most recently used last, and drops the least recently used once the weights held pass ``max_bytes``.

``BRUSHWORK_NETWORK_CACHE_MB``: the bound (default 1024; 0 keeps nothing).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_MB = 1024


def weight_bytes(value: Any) -> int:
    """Bytes of the parameters and buffers of the torch modules in ``value`` (a module, or an object or
    dataclass holding some: a model and its encoder)."""
    import torch

    seen: set[int] = set()
    total = 0
    modules = [value] if isinstance(value, torch.nn.Module) else [
        v for v in vars(value).values() if isinstance(v, torch.nn.Module)
    ] if hasattr(value, "__dict__") else []  # fmt: skip
    for module in modules:
        for tensor in (*module.parameters(), *module.buffers()):
            if id(tensor) not in seen:
                seen.add(id(tensor))
                total += tensor.numel() * tensor.element_size()
    return total


class NetworkCache:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self._items.values())

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key][0]
        value = load()  # outside the lock: another thread may load something else meanwhile
        size = weight_bytes(value)
        with self._lock:
            self.misses += 1
            if size <= self.max_bytes:
                self._items[key] = (value, size)
                self._items.move_to_end(key)
                while self.bytes > self.max_bytes:
                    self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def _default_bytes() -> int:
    try:
        return max(0, int(float(os.environ.get("BRUSHWORK_NETWORK_CACHE_MB", DEFAULT_MB)) * 2**20))
    except ValueError:
        return DEFAULT_MB * 2**20


#: The process's cache (the studio worker's); ``max_bytes`` may be changed at any time.
CACHE = NetworkCache(_default_bytes())


def cached(key: Hashable, load: Callable[[], T]) -> T:
    """``load()``'s result, kept under ``key`` in :data:`CACHE` for the next call with that key."""
    return CACHE.get(key, load)
