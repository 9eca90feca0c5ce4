import random

import pytest

from livedub.runtime.session.ordering import ReorderBuffer


def test_results_leave_in_sequence_order_whatever_order_they_finish():
    buffer: ReorderBuffer[int] = ReorderBuffer()
    for seq in range(10):
        buffer.admit(seq)
    finish = list(range(10))
    random.Random(7).shuffle(finish)
    delivered = []
    for seq in finish:
        delivered += buffer.complete(seq, seq)
    assert delivered == list(range(10))
    assert len(buffer) == 0


def test_gap_in_numbering_does_not_stall():
    buffer: ReorderBuffer[str] = ReorderBuffer()
    for seq in (1, 2, 5):
        buffer.admit(seq)
    assert buffer.complete(5, "e") == []
    assert buffer.complete(1, "a") == ["a"]
    assert buffer.complete(2, "b") == ["b", "e"]


def test_late_lower_sequence_becomes_head():
    buffer: ReorderBuffer[int] = ReorderBuffer()
    buffer.admit(4)
    buffer.admit(3)  # a retry of an earlier fragment
    assert buffer.complete(4, 4) == []
    assert buffer.complete(3, 3) == [3, 4]


def test_double_admit_and_unknown_complete_are_errors():
    buffer: ReorderBuffer[int] = ReorderBuffer()
    buffer.admit(1)
    with pytest.raises(ValueError):
        buffer.admit(1)
    with pytest.raises(KeyError):
        buffer.complete(2, 2)
