"""Which streams a shedding pod asks to move, and when it takes streams again (server/shedding.py)."""

from livedub.runtime.server import shedding
from livedub.runtime.server.shedding import Candidate, Shedder, annotation_value, choose, shed_count


def test_nothing_in_flight_first_then_the_most_recently_connected() -> None:
    candidates = [
        Candidate(("c0", "a"), inflight=0, order=0),
        Candidate(("c1", "b"), inflight=2, order=1),  # newest, but a fragment in flight: told later
        Candidate(("c2", "c"), inflight=0, order=2),
    ]
    assert choose(candidates, 2) == [("c2", "c"), ("c0", "a")]
    assert choose(candidates, 0) == [] and len(choose(candidates, 9)) == 3


def test_the_value_comes_from_the_downward_api_file() -> None:
    text = 'prometheus.io/scrape="true"\ndubbing.livedub.io/shed-streams="3;from=60;at=1796234400"\n'
    value = annotation_value(text)
    assert value == "3;from=60;at=1796234400" and shed_count(value) == 3
    assert annotation_value('prometheus.io/scrape="true"\n') is None
    assert shed_count("junk") == 0 and shed_count("2") == 2  # a bare count set by hand works too


def test_a_request_lasts_until_its_streams_left_or_the_timeout_and_is_not_repeated() -> None:
    live = {("c0", "a"), ("c1", "b")}
    now = [0.0]
    shedder = Shedder(lambda: live, clock=lambda: now[0])
    candidates = [Candidate(k, 0, i) for i, k in enumerate(sorted(live))]
    assert shedder.start("1;at=1", candidates) == [("c1", "b")]
    assert shedder.active
    assert shedder.start("1;at=1", candidates) == []  # the same value again: already handled
    live.discard(("c1", "b"))
    assert not shedder.active  # its stream left: it takes streams again
    assert shedder.start("1;at=2", [Candidate(("c0", "a"), 0, 0)]) == [("c0", "a")]
    now[0] = shedding.SHED_TIMEOUT_S
    assert not shedder.active  # a stream that never leaves does not keep the pod closed
