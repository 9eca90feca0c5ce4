import json

import numpy as np
import pytest

from livedub.runtime.artifacts import ArtifactWriter, safe_component

HOSTILE = ["../../etc/passwd", "/abs/path", "..", "a/../../b", "名前 with spaces", "", "x" * 500]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_client_ids_cannot_escape_the_artifact_directory(tmp_path, hostile):
    writer = ArtifactWriter(tmp_path / "artifacts")
    folder = writer.write(
        stream_id=hostile,
        sequence=3,
        fragment_id=hostile,
        input_audio=np.zeros(160, dtype=np.float32),
        dubbed_audio=np.zeros(160, dtype=np.float32),
        sample_rate=16000,
        record={"transcript": "hi"},
    )
    assert folder.resolve().is_relative_to((tmp_path / "artifacts").resolve())
    assert json.loads((folder / "fragment.json").read_text()) == {"transcript": "hi"}
    assert (folder / "input.wav").exists() and (folder / "dubbed.wav").exists()


def test_distinct_ids_never_collide_after_slugging():
    assert safe_component("a/b") != safe_component("a_b")
    assert safe_component("plain-id_1.2") == "plain-id_1.2"
