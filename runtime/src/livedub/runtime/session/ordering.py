"""Deliver results in ``sequence_number`` order, whatever order the pipeline finishes them in.

Ordering is over the fragments actually received: a gap in the numbering (the worker skipped a
number) never stalls delivery, because only sequence numbers that were admitted are waited for.
A fragment that arrives late with a lower number (a retry) becomes the head and later results wait
for it, so the client still sees ascending numbers within what is outstanding.

Each admission gets a ticket, so one sequence number may be pending more than once: a rejection and
the retry that follows it, or a second fragment that reused a number. Results of one number leave in
the order they were admitted, after every lower number — rejections included.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from typing import Generic, TypeVar

T = TypeVar("T")

Ticket = tuple[int, int]  # (sequence_number, admission counter)


class ReorderBuffer(Generic[T]):
    def __init__(self) -> None:
        self._pending: list[Ticket] = []  # min-heap of admitted, undelivered tickets
        self._pending_set: set[Ticket] = set()
        self._sequences: Counter[int] = Counter()
        self._done: dict[Ticket, T] = {}
        self._counter = itertools.count()

    def __len__(self) -> int:
        return len(self._pending_set)

    def __contains__(self, sequence: int) -> bool:
        return self._sequences[sequence] > 0

    def admit(self, sequence: int) -> Ticket:
        ticket = (sequence, next(self._counter))
        heapq.heappush(self._pending, ticket)
        self._pending_set.add(ticket)
        self._sequences[sequence] += 1
        return ticket

    def complete(self, ticket: Ticket, item: T) -> list[T]:
        """Record ``item`` for ``ticket``; return every item now deliverable, in order."""
        if ticket not in self._pending_set or ticket in self._done:
            raise KeyError(f"ticket {ticket} is not pending")
        self._done[ticket] = item
        ready: list[T] = []
        while self._pending and self._pending[0] in self._done:
            head = heapq.heappop(self._pending)
            self._pending_set.discard(head)
            self._sequences[head[0]] -= 1
            if not self._sequences[head[0]]:
                del self._sequences[head[0]]
            ready.append(self._done.pop(head))
        return ready

    def ahead_of(self, ticket: Ticket) -> int:
        """Pending tickets that will be delivered before ``ticket``."""
        return sum(1 for other in self._pending_set if other < ticket)
