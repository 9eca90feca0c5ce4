"""Deliver results in ``sequence_number`` order, whatever order the pipeline finishes them in.

Ordering is over the fragments actually received: a gap in the numbering (the worker skipped a
number) never stalls delivery, because only sequence numbers that were admitted are waited for.

Each admission gets a ticket, so one sequence number may be pending more than once: a rejection and
the retry that follows it, or a second fragment that reused a number. Results of one number leave in
the order they were admitted, after every lower number — rejections included.

Only what was admitted *earlier* can hold a result back. A retry that arrives late with a lower
number waits for nothing admitted after it, and holds nothing admitted before it: those fragments
have earlier deadlines (``timeout_ms``), and a late retry must never keep them past theirs. Its own
result then leaves after theirs, the one case in which numbers are not ascending.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Generic, TypeVar

T = TypeVar("T")

Ticket = tuple[int, int]  # (sequence_number, admission counter)


class ReorderBuffer(Generic[T]):
    def __init__(self) -> None:
        self._pending_set: set[Ticket] = set()  # admitted, undelivered
        self._sequences: Counter[int] = Counter()
        self._done: dict[Ticket, T] = {}
        self._counter = itertools.count()

    def __len__(self) -> int:
        return len(self._pending_set)

    def __contains__(self, sequence: int) -> bool:
        return self._sequences[sequence] > 0

    def admit(self, sequence: int) -> Ticket:
        ticket = (sequence, next(self._counter))
        self._pending_set.add(ticket)
        self._sequences[sequence] += 1
        return ticket

    def complete(self, ticket: Ticket, item: T) -> list[T]:
        """Record ``item`` for ``ticket``; return every item now deliverable, in order."""
        if ticket not in self._pending_set or ticket in self._done:
            raise KeyError(f"ticket {ticket} is not pending")
        self._done[ticket] = item
        ready: list[T] = []
        # Pending tickets are few (a stream's window): a scan in number order is cheap and clear.
        for candidate in sorted(self._pending_set):
            if candidate in self._done and not self._held(candidate):
                self._release(candidate)
                ready.append(self._done.pop(candidate))
        return ready

    def _held(self, ticket: Ticket) -> bool:
        """Whether an undelivered ticket with a lower number (or the same, earlier) was admitted before it."""
        return any(other < ticket and other[1] < ticket[1] for other in self._pending_set if other != ticket)

    def _release(self, ticket: Ticket) -> None:
        self._pending_set.discard(ticket)
        self._sequences[ticket[0]] -= 1
        if not self._sequences[ticket[0]]:
            del self._sequences[ticket[0]]

    def ahead_of(self, ticket: Ticket) -> int:
        """Pending tickets that will be delivered before ``ticket``."""
        return sum(1 for other in self._pending_set if other < ticket and other[1] < ticket[1])
