"""The speakers / captions extensions in both wire dialects: inbound options and outbound fields."""

from __future__ import annotations

import pydantic
import pytest

from livedub.runtime.protocol import events as ev
from livedub.runtime.protocol.dialects import GUIDE, WORKER


def test_both_dialects_read_the_options_and_default_to_unset():
    guide = GUIDE.stream_init({"source_language": "en", "target_language": "es", "speakers": "auto", "captions": True})
    worker = WORKER.stream_init(
        {
            "stream_id": "w",
            "config": {"source_language": "en", "target_language": "es", "speakers": "auto", "captions": True},
        }
    )
    for init in (guide, worker):
        assert (init.speakers, init.captions) == ("auto", True)
    plain = GUIDE.stream_init({"source_language": "en", "target_language": "es"})
    assert (plain.speakers, plain.captions) == (None, None)  # the server's SPEAKERS / CAPTIONS decide


@pytest.mark.parametrize("bad", [{"speakers": "yes"}, {"speakers": 3}, {"captions": "maybe"}])
def test_bad_option_values_are_refused(bad):
    with pytest.raises(pydantic.ValidationError):
        GUIDE.stream_init({"source_language": "en", "target_language": "es", **bad})
    with pytest.raises(pydantic.ValidationError):
        WORKER.stream_init({"stream_id": "w", "config": {"source_language": "en", "target_language": "es", **bad}})


def test_fragment_processed_carries_speaker_and_captions_in_both_dialects():
    cue = ev.CaptionCue(start_ms=100, end_ms=900, text="Hola", speaker="S1")
    result = ev.FragmentProcessed(
        fragment_id="f",
        status="success",
        dubbed_audio=b"\x00\x00",
        speaker="S1",
        speaker_voice="jm_kumo",
        captions=ev.Captions(source_language="en", target_language="es", source=[cue], target=[cue]),
    )
    for dialect in (GUIDE, WORKER):
        _, payload = dialect.encode(result)
        assert payload["speaker"] == "S1" and payload["speaker_voice"] == "jm_kumo"
        assert payload["captions"]["target"] == [{"start_ms": 100, "end_ms": 900, "text": "Hola", "speaker": "S1"}]
        assert payload["captions"]["target_timing"] == "proportional"
    _, plain = GUIDE.encode(ev.FragmentProcessed(fragment_id="f", status="success"))
    assert not {"speaker", "speaker_voice", "captions"} & set(plain)
