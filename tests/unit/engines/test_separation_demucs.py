"""The Demucs backend loaded from a mounted checkpoint, on FLEURS speech over a synthesised bed.

The checkpoint is a small HTDemucs with untrained weights written by demucs's own save functions
(tests/support/demucs_tiny.py): trained weights cannot be fetched here, so separation *quality* is
not measured (an untrained model's stems are not music and speech). What is tested is everything
around the weights: the loaders, what is refused, no network, the stems picked, rates, channels,
exact lengths, chunking and its memory.

The pure helpers run everywhere; the rest needs torch and demucs and runs in ``.venv-production``
(``make test`` sets ``LIVEDUB_PRODUCTION_TESTS=1``, where a missing engine fails instead of skipping).
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from livedub.runtime.audio.codec import resample
from livedub.runtime.engines.separation_base import SeparationError
from livedub.runtime.engines.separation_demucs import block_weights, blocks
from livedub.runtime.engines.separation_frames import separate_in_groups
from livedub.runtime.errors import ModelLoadError
from support.beds import music_bed
from support.data import fleurs
from support.production import require

ROOT = Path(__file__).resolve().parents[3]

# --- pure helpers: no torch needed ------------------------------------------------------------------


@pytest.mark.parametrize(("length", "block", "fade"), [(10, 100, 5), (100, 100, 10), (101, 100, 10), (1000, 64, 16)])
def test_blocks_cover_the_input_and_cross_fade_to_one(length: int, block: int, fade: int) -> None:
    total = np.zeros(length)
    spans = list(blocks(length, block, fade))
    for start, end in spans:
        assert end - start <= block
        total[start:end] += block_weights(start, end, length, fade)
    assert spans[0][0] == 0 and spans[-1][1] == length
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def _by_channel(group: np.ndarray) -> np.ndarray:
    # A stand-in model that scales channel k by k + 1: shows which input channel each output came from.
    return group * np.arange(1, group.shape[1] + 1, dtype=np.float32)


@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (48000, 2), (22050, 3)])
def test_groups_keep_rate_length_and_channels(rate: int, channels: int) -> None:
    speech = fleurs("fleurs-en-001")[0][:32000]
    mono = resample(speech, 16000, rate)
    frames = np.stack([mono * (0.5 + 0.25 * c) for c in range(channels)], axis=1).astype(np.float32)
    out = separate_in_groups(frames, rate, 44100, 2, _by_channel)
    assert out.shape == frames.shape and out.dtype == np.float32
    # Pairs (0, 1), then (2, 2): channel 2 alone in its group comes back at the group's first gain.
    gains = [1.0, 2.0, 1.0][:channels]
    middle = slice(rate // 10, -rate // 10)
    for c in range(channels):
        np.testing.assert_allclose(out[middle, c], frames[middle, c] * gains[c], atol=2e-3)


def test_silence_needs_no_model_and_a_wrong_shape_is_a_separation_error() -> None:
    def never(group: np.ndarray) -> np.ndarray:
        raise AssertionError("the model was called for silence")

    silent = np.zeros((8000, 2), dtype=np.float32)
    assert not separate_in_groups(silent, 16000, 44100, 2, never).any()
    loud = np.random.default_rng(0).standard_normal((8000, 1)).astype(np.float32) * 0.1
    with pytest.raises(SeparationError, match="the model returned"):
        separate_in_groups(loud, 16000, 44100, 2, lambda group: group[:-1])


# --- the real backend on a checkpoint written by demucs ------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require("torch")
    require("demucs")
    from support.demucs_tiny import build_tiny_demucs

    return build_tiny_demucs(tmp_path_factory.mktemp("demucs"))


@pytest.fixture(scope="module")
def separator(checkpoint: Path) -> Any:
    from livedub.runtime.engines.separation_demucs import DemucsSeparator

    return DemucsSeparator(checkpoint, device="cpu")


def _programme(seconds: float, rate: int = 16000) -> tuple[np.ndarray, np.ndarray]:
    """FLEURS speech over a music bed (at 16 kHz, mono): the mix and the bed."""
    speech = fleurs("fleurs-en-000")[0][: int(seconds * 16000)]
    speech = np.concatenate([speech, np.zeros(int(seconds * 16000) - len(speech), np.float32)])
    speech = resample(speech, 16000, rate)
    bed = music_bed(len(speech), rate, level=0.02)
    return (speech + bed).astype(np.float32), bed


def _reference_background(model: Any, mix: np.ndarray, rate: int) -> np.ndarray:
    """demucs's own API (``demucs.api.Separator.separate_tensor``) on the whole mono mix sent on both
    sides, given the loaded model instead of a name to fetch, non-vocal stems summed."""
    import torch
    from demucs.api import Separator as DemucsAPI

    class Loaded(DemucsAPI):
        def _load_model(self) -> None:  # the one change: no get_model (that looks names up online)
            self._model = self._name
            self._audio_channels = self._model.audio_channels
            self._samplerate = self._model.samplerate

    at_44k = resample(mix, rate, 44100)
    api = Loaded(model, device="cpu", shifts=0, overlap=0.25, split=True, progress=False)
    _, stems = api.separate_tensor(torch.from_numpy(np.stack([at_44k, at_44k])))
    background = sum(stem for name, stem in stems.items() if name != "vocals")[0].numpy()
    return resample(background, 44100, rate)[: len(mix)]


def test_loads_the_package_file_the_bag_directory_and_a_safetensors_export(checkpoint: Path, separator: Any) -> None:
    import torch
    from safetensors.torch import save_file

    from livedub.runtime.engines.separation_demucs_checkpoint import load_demucs

    from_file = load_demucs(checkpoint)
    from_bag = load_demucs(checkpoint.parent)  # tinyht.yaml names the signature, tinyht-<hash>.th beside it
    assert list(from_file.sources) == ["drums", "bass", "other", "vocals"] and from_file.samplerate == 44100
    assert type(from_bag).__name__ == "BagOfModels" and len(from_bag.models) == 1
    # demucs 4.1's hub export: the tensors plus class and init arguments as JSON metadata
    # (a Fraction encoded as demucs.hf._decode_json reads it).
    package = torch.load(checkpoint, weights_only=False)
    kwargs = dict(package["kwargs"])
    kwargs["segment"] = {"_type": "fraction", "numerator": 39, "denominator": 5}
    exported = checkpoint.parent / "export" / "tinyht.safetensors"
    exported.parent.mkdir()
    metadata = {"klass": "demucs.htdemucs.HTDemucs", "args": json.dumps([]), "kwargs": json.dumps(kwargs)}
    save_file({k: v.contiguous() for k, v in package["state"].items()}, str(exported), metadata=metadata)
    from_export = load_demucs(exported)
    for name, tensor in from_file.state_dict().items():
        assert torch.equal(tensor, from_export.state_dict()[name]), name
        assert torch.equal(tensor, from_bag.models[0].state_dict()[name]), name
    assert separator.sources == ["drums", "bass", "other", "vocals"] and separator.device == "cpu"


def test_background_of_fleurs_over_a_music_bed_is_the_models_non_vocal_stems(separator: Any) -> None:
    mix, _ = _programme(6.0)
    out = separator.background(mix[:, None], 16000)
    assert out.shape == (len(mix), 1) and out.dtype == np.float32 and np.isfinite(out).all()
    expected = _reference_background(separator._model, mix, 16000)
    # The same stems as demucs's own call, not the input passed through and not the vocals.
    assert float(np.corrcoef(out[:, 0], expected)[0, 1]) > 0.999
    assert float(np.corrcoef(out[:, 0], mix)[0, 1]) < 0.99
    # demucs's API adds the mix's DC offset back to every stem (three times in a sum of three); the
    # backend adds it once. Apart from that constant, the same samples (the first and last 10 ms
    # differ by resampling's edge ringing on that constant).
    middle = slice(160, -160)
    ours, theirs = out[middle, 0] - out[:, 0].mean(), expected[middle] - expected.mean()
    np.testing.assert_allclose(ours, theirs, atol=1e-4 * float(np.abs(theirs).max()))


@pytest.mark.parametrize(("rate", "channels"), [(48000, 2), (22050, 3), (8000, 1)])
def test_rate_channels_and_length_are_the_fragments_own(separator: Any, rate: int, channels: int) -> None:
    mix, bed = _programme(2.5, rate)
    frames = np.stack([mix, bed * 3, mix * 0.5][:channels], axis=1).astype(np.float32)
    out = separator.background(frames, rate)
    assert out.shape == frames.shape and out.dtype == np.float32 and np.isfinite(out).all()
    if channels > 1:  # each channel is its own: different inputs, different backgrounds
        assert float(np.corrcoef(out[:, 0], out[:, 1])[0, 1]) < 0.99
    assert not separator.background(np.zeros_like(frames), rate).any()


def test_a_long_input_goes_through_the_model_a_block_at_a_time(checkpoint: Path) -> None:
    from livedub.runtime.engines.separation_demucs import DemucsSeparator

    chunked = DemucsSeparator(checkpoint, device="cpu", block_s=4.0, fade_s=0.5)
    seen: list[int] = []
    apply = chunked._apply

    def spy(model: Any, mix: Any, **kwargs: Any) -> Any:
        seen.append(mix.shape[-1])
        return apply(model, mix, **kwargs)

    chunked._apply = spy
    mix, _ = _programme(13.0)
    out = chunked.background(mix[:, None], 16000)
    assert out.shape == (len(mix), 1) and np.isfinite(out).all()
    assert len(seen) == 4 and max(seen) <= 4 * 44100, seen
    # Cross-faded joins: no step at a block boundary larger than the signal's own sample-to-sample steps.
    steps = np.abs(np.diff(out[:, 0]))
    assert steps.max() < 20 * np.percentile(steps, 99)


def test_missing_garbage_and_foreign_files_stop_start_up(checkpoint: Path, tmp_path: Path) -> None:
    import torch

    from livedub.runtime.engines.separation_demucs import DemucsSeparator

    with pytest.raises(ModelLoadError, match="needs SEPARATION_MODEL_PATH"):
        DemucsSeparator(None, device="cpu")
    with pytest.raises(ModelLoadError, match="does not exist"):
        DemucsSeparator(tmp_path / "htdemucs.th", device="cpu")
    garbage = tmp_path / "garbage.th"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(ModelLoadError, match=r"cannot load a Demucs model from .*garbage\.th"):
        DemucsSeparator(garbage, device="cpu")
    truncated = tmp_path / "truncated.th"
    truncated.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="cannot load"):
        DemucsSeparator(truncated, device="cpu")
    # A pickle that would run code when loaded: weights_only refuses it, and nothing ran.
    marker = tmp_path / "ran"
    hostile = tmp_path / "hostile.th"
    torch.save({"klass": _Hostile(str(marker)), "args": [], "kwargs": {}, "state": {}}, hostile)
    with pytest.raises(ModelLoadError, match="cannot load"):
        DemucsSeparator(hostile, device="cpu")
    assert not marker.exists()
    # A demucs package whose model has no vocals stem cannot give a background.
    package = torch.load(checkpoint, weights_only=False)
    package["kwargs"] = {**package["kwargs"], "sources": ["drums", "bass", "other", "piano"]}
    no_vocals = tmp_path / "no_vocals.th"
    torch.save(package, no_vocals)
    with pytest.raises(ModelLoadError, match="needs 'vocals'"):
        DemucsSeparator(no_vocals, device="cpu")
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(ModelLoadError, match="expected one bag"):
        DemucsSeparator(empty_dir, device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="SEPARATION_DEVICE=cuda but torch sees no CUDA device"):
            DemucsSeparator(checkpoint, device="cuda")


class _Hostile:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.path),))


def test_settings_and_factory(checkpoint: Path, tmp_path: Path) -> None:
    from pydantic import ValidationError

    from livedub.runtime.config import Settings
    from livedub.runtime.engines.factory import build_separator
    from livedub.runtime.engines.separation_demucs import DemucsSeparator

    with pytest.raises(ValidationError, match="SEPARATION_ENGINE=demucs needs SEPARATION_MODEL_PATH"):
        Settings(_env_file=None, separation_engine="demucs")
    built = build_separator(
        Settings(_env_file=None, separation_engine="demucs", separation_model_path=checkpoint, separation_device="cpu")
    )
    assert isinstance(built, DemucsSeparator) and built.device == "cpu"
    with pytest.raises(ModelLoadError, match="does not exist"):
        build_separator(
            Settings(_env_file=None, separation_engine="demucs", separation_model_path=tmp_path / "nothing-here")
        )


_OFFLINE_SCRIPT = textwrap.dedent(
    """
    import socket, sys
    from pathlib import Path
    attempts = []
    def refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise OSError("network blocked by the test")
    socket.getaddrinfo = refuse
    socket.create_connection = refuse
    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    import numpy as np
    from livedub.runtime.engines.separation_demucs import DemucsSeparator
    separator = DemucsSeparator(Path(sys.argv[1]), device="auto")
    separator.warm_up()
    separator.background(np.random.default_rng(0).standard_normal((16000, 1)).astype(np.float32) * 0.1, 16000)
    print("ATTEMPTS", len(attempts), attempts)
    """
)


@pytest.mark.parametrize("layout", ["file", "bag"])
def test_loading_and_separating_never_touch_the_network(checkpoint: Path, layout: str) -> None:
    path = checkpoint if layout == "file" else checkpoint.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("HF_HUB_OFFLINE", None)  # no help from the environment: the code itself must not try
    run = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT, str(path)], capture_output=True, text=True, timeout=300, env=env
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "ATTEMPTS 0 []" in run.stdout, run.stdout


def _cuda() -> bool:
    return importlib.util.find_spec("torch") is not None and bool(__import__("torch").cuda.is_available())


@pytest.mark.skipif(not _cuda(), reason="no CUDA device here: SEPARATION_DEVICE=cuda runs only where torch sees one")
def test_runs_on_cuda_when_asked(checkpoint: Path, separator: Any) -> None:
    from livedub.runtime.engines.separation_demucs import DemucsSeparator

    gpu = DemucsSeparator(checkpoint, device="cuda")
    assert all(p.device.type == "cuda" for p in gpu._model.parameters())
    mix, _ = _programme(3.0)
    on_gpu = gpu.background(mix[:, None], 16000)
    on_cpu = separator.background(mix[:, None], 16000)
    assert float(np.corrcoef(on_gpu[:, 0], on_cpu[:, 0])[0, 1]) > 0.999


def test_pickle_is_what_the_hostile_file_uses() -> None:
    # Guards the test above: the hostile object really does run code when unpickled without weights_only.
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "ran"
        pickle.loads(pickle.dumps(_Hostile(str(marker))))
        assert marker.exists()
