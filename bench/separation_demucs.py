"""Demucs backend latency and memory per fragment, at htdemucs's size, through the real backend.

    nice -n 10 python -m bench.separation_demucs [--seconds 6] [--repeats 2] [--device cpu]

Trained weights cannot be fetched here, so the checkpoint is demucs's ``HTDemucs`` class at its
default size (48 channels, depth 4, 5 transformer layers: the architecture of the released
``htdemucs``; the released checkpoint's exact arguments may differ slightly) with **untrained**
weights, saved in demucs's package format and loaded by ``DemucsSeparator`` from the path. Latency
and memory do not depend on the weights' values, so they are measured; separation quality (SDR) does,
so it is **not** (an untrained model's stems are not music and speech).

Per run: a FLEURS clip over the synthesised music bed, 16 kHz mono, ``--seconds`` long, through
``background()`` (resampling, normalisation, the model on 7.8 s segments, stems summed); the first
call is reported apart. RSS: process peak before loading, after loading, after separating.
Needs torch and demucs (``.venv-production``). Writes bench/results/separation_demucs.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from bench.run import RESULTS, ROOT, machine

sys.path.insert(0, str(ROOT / "tests"))
from support.beds import music_bed
from support.data import fleurs


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _checkpoint(directory: Path) -> Path:
    import torch
    from demucs.htdemucs import HTDemucs
    from demucs.states import get_state, save_with_checksum

    torch.manual_seed(0)
    model = HTDemucs(sources=["drums", "bass", "other", "vocals"], samplerate=44100, segment=Fraction(39, 5))
    args, kwargs = model._init_args_kwargs
    package = {"klass": HTDemucs, "args": args, "kwargs": kwargs, "state": get_state(model, None, half=True)}
    save_with_checksum(package, directory / "htdemucs_size.th")
    return next(directory.glob("htdemucs_size-*.th"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    options = parser.parse_args()

    import torch

    from livedub.runtime.engines.separation_demucs import DemucsSeparator

    speech = np.tile(fleurs("fleurs-en-000")[0], 4)[: int(options.seconds * 16000)]
    mix = (speech + music_bed(len(speech), 16000, level=0.02)).astype(np.float32)[:, None]
    rss_start = _peak_mb()
    with tempfile.TemporaryDirectory() as tmp:
        path = _checkpoint(Path(tmp))
        size_mb = path.stat().st_size / 2**20
        started = time.perf_counter()
        separator = DemucsSeparator(path, device=options.device)
        load_s = time.perf_counter() - started
    rss_loaded = _peak_mb()
    params = sum(p.numel() for p in separator._model.parameters())
    started = time.perf_counter()
    separator.background(mix, 16000)
    first_s = time.perf_counter() - started
    times = []
    for _ in range(options.repeats):
        started = time.perf_counter()
        out = separator.background(mix, 16000)
        times.append(time.perf_counter() - started)
    assert out.shape == mix.shape
    median = statistics.median(times)
    result = {
        "machine": machine(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": separator.device,
        "model": "HTDemucs default size, untrained weights (latency and memory only; quality not measured)",
        "parameters": params,
        "checkpoint_mb": round(size_mb, 1),
        "fragment_s": options.seconds,
        "load_s": round(load_s, 2),
        "first_call_s": round(first_s, 2),
        "seconds_per_fragment": [round(t, 2) for t in times],
        "median_s": round(median, 2),
        "real_time_factor": round(median / options.seconds, 2),
        "rss_mb": {"start": round(rss_start), "loaded": round(rss_loaded), "peak": round(_peak_mb())},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "separation_demucs.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"HTDemucs ({params / 1e6:.1f} M parameters, {size_mb:.0f} MB half-precision checkpoint) on "
        f"{separator.device}: load {load_s:.1f} s, first call {first_s:.1f} s, {options.seconds:.0f} s fragment "
        f"in {median:.1f} s (RTF {median / options.seconds:.2f}); RSS {rss_start:.0f} -> {rss_loaded:.0f} -> "
        f"{_peak_mb():.0f} MB peak"
    )


if __name__ == "__main__":
    main()
