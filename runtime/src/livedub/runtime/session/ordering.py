"""Deliver results in ``sequence_number`` order, whatever order the pipeline finishes them in.

Ordering is over the fragments actually received: a gap in the numbering (the worker skipped a
number) never stalls delivery, because only sequence numbers that were admitted are waited for.
A fragment that arrives late with a lower number (a retry) becomes the head and later results wait
for it, so the client still sees ascending numbers within what is outstanding.
"""

from __future__ import annotations

import heapq
from typing import Generic, TypeVar

T = TypeVar("T")


class ReorderBuffer(Generic[T]):
    def __init__(self) -> None:
        self._pending: list[int] = []  # min-heap of admitted, undelivered sequence numbers
        self._pending_set: set[int] = set()
        self._done: dict[int, T] = {}

    def __len__(self) -> int:
        return len(self._pending_set)

    def __contains__(self, sequence: int) -> bool:
        return sequence in self._pending_set

    def admit(self, sequence: int) -> None:
        if sequence in self._pending_set:
            raise ValueError(f"sequence {sequence} already pending")
        heapq.heappush(self._pending, sequence)
        self._pending_set.add(sequence)

    def complete(self, sequence: int, item: T) -> list[T]:
        """Record ``item`` for ``sequence``; return every item now deliverable, in order."""
        if sequence not in self._pending_set:
            raise KeyError(f"sequence {sequence} was never admitted")
        self._done[sequence] = item
        ready: list[T] = []
        while self._pending and self._pending[0] in self._done:
            head = heapq.heappop(self._pending)
            self._pending_set.discard(head)
            ready.append(self._done.pop(head))
        return ready
