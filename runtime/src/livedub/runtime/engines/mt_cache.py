"""A small thread-safe LRU of translations, for phrases a broadcast repeats.

Live shows repeat themselves (station idents, "thank you", a presenter's sign-off), and a client that
retries a timed-out fragment sends the very same text and context again. Paid MT bills those
characters every time; a hit here costs nothing and answers in microseconds.

The key is whatever the caller decides changes the output; :class:`DeepLTranslator` uses
``(text, source, target, context, formality, glossary_id)`` by default — see docs/deepl.md for why
``context`` is in it and how to leave it out. Only successful translations are stored. Several
worker threads call one translator at once, hence the lock (an ``OrderedDict`` is not safe to
mutate concurrently); the lock is never held during a network call.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    misses: int
    size: int
    max_size: int


class TranslationCache:
    """Least-recently-used map from a hashable key to a translation. ``max_size`` 0 disables it."""

    def __init__(self, max_size: int = 1024) -> None:
        if max_size < 0:
            raise ValueError("max_size must be >= 0")
        self.max_size = max_size
        self._data: OrderedDict[Hashable, str] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> str | None:
        if not self.max_size:
            return None
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: str) -> None:
        if not self.max_size:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.max_size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self.hits, self.misses, len(self._data), self.max_size)

    def __len__(self) -> int:
        return len(self._data)
