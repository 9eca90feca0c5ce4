"""Run one callable from several threads at once and collect what each returned or raised."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def run_in_threads(work: Callable[[int], T], count: int, timeout_s: float) -> tuple[list[T], list[BaseException]]:
    """``work(0) … work(count - 1)``, each on its own thread; results (in completion order) and errors."""
    results: list[T] = []
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            results.append(work(index))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout_s)
    return results, errors
