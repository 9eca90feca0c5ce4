import random

import pytest

from livedub.runtime.session.ordering import ReorderBuffer


def test_results_leave_in_sequence_order_whatever_order_they_finish():
    buffer: ReorderBuffer[int] = ReorderBuffer()
    tickets = {seq: buffer.admit(seq) for seq in range(10)}
    finish = list(range(10))
    random.Random(7).shuffle(finish)
    delivered = []
    for seq in finish:
        delivered += buffer.complete(tickets[seq], seq)
    assert delivered == list(range(10))
    assert len(buffer) == 0


def test_gap_in_numbering_does_not_stall():
    buffer: ReorderBuffer[str] = ReorderBuffer()
    t = {seq: buffer.admit(seq) for seq in (1, 2, 5)}
    assert buffer.complete(t[5], "e") == []
    assert buffer.complete(t[1], "a") == ["a"]
    assert buffer.complete(t[2], "b") == ["b", "e"]


def test_one_number_twice_leaves_in_admission_order_after_lower_numbers():
    # Issue 11 item 4: seq 1 (A), then seq 2 (B), then seq 2 again (C, rejected at once): A, B, C.
    buffer: ReorderBuffer[str] = ReorderBuffer()
    a, b, c = buffer.admit(1), buffer.admit(2), buffer.admit(2)
    assert 2 in buffer
    assert buffer.complete(c, "C") == []
    assert buffer.ahead_of(c) == 2
    assert buffer.complete(b, "B") == []
    assert buffer.complete(a, "A") == ["A", "B", "C"]
    assert 2 not in buffer and len(buffer) == 0


def test_completing_twice_or_unknown_is_an_error():
    buffer: ReorderBuffer[int] = ReorderBuffer()
    one = buffer.admit(1)
    two = buffer.admit(2)
    buffer.complete(two, 2)
    with pytest.raises(KeyError):
        buffer.complete(two, 2)
    with pytest.raises(KeyError):
        buffer.complete((9, 99), 9)
    assert buffer.complete(one, 1) == [1, 2]


def test_a_late_retry_with_a_lower_number_holds_back_nothing_admitted_before_it():
    # Seq 3 was admitted before seq 2's retry: its deadline is earlier, so the retry must not hold it.
    buffer: ReorderBuffer[str] = ReorderBuffer()
    three = buffer.admit(3)
    retry = buffer.admit(2)
    assert buffer.complete(three, "3") == ["3"]
    assert buffer.complete(retry, "2") == ["2"]
    # But what is admitted after the retry still waits for it.
    retry = buffer.admit(5)
    six = buffer.admit(6)
    assert buffer.complete(six, "6") == []
    assert buffer.complete(retry, "5") == ["5", "6"]
