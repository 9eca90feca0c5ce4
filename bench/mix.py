"""Mix stage benchmark (issue 14): separation quality (SDR) and the cost of each mix, per fragment.

    .venv/bin/python -m bench.mix [--clips 4] [--no-separation]

* **SDR** of Spleeter's 2-stem separation (the backend behind mix "background") on mixes built from
  6 s of English FLEURS speech and a bed: a synthesised music-like bed (chords with harmonics and a
  kick/hat beat — the shared data has no music) and pink-ish noise, bed 6 dB under the speech.
  SDR = 10 log10(|s|² / |s - ŝ|²) of the background stem against the true bed, and of the voice
  (mix - background) against the true speech; "input" is the same measure for the mix itself, so the
  improvement is what separation adds.
* **Latency**: the mix stage alone on a fitted dub (a Spanish FLEURS clip in the fragment's slot):
  voiceover (ducking), loudness matching, background (separation incl. the pipe and resampling), ms
  median of the clips, and the RSS of this process and of the Spleeter process.
* **Default path**: ``dub`` through the same Mixer (the stage is skipped) vs calling nothing, so a
  slowdown of the default would show.

Writes bench/results/mix.json and prints a table. Run under ``nice``: the figures are per fragment.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from livedub.runtime.pipeline.mix import LoudnessPolicy, Mixer, MixOptions  # noqa: E402
from support.beds import music_bed, noise_bed  # noqa: E402  (tests/support is the one place beds are built)
from support.data import fleurs  # noqa: E402

SR = 16000
RESULTS = ROOT / "bench" / "results" / "mix.json"


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    error = reference - estimate
    return float(10 * np.log10(np.sum(reference**2) / max(np.sum(error**2), 1e-12)))


def rss_mb(pid: int | None = None) -> float:
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    best, value = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        value = fn()
        best.append((time.perf_counter() - started) * 1000)
    return statistics.median(best), value


def commit() -> str:
    git = ["git", "rev-parse", "--short", "HEAD"]
    return subprocess.run(git, capture_output=True, text=True, cwd=ROOT).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--no-separation", action="store_true")
    args = parser.parse_args()
    clips = [fleurs(f"fleurs-en-{i:03d}")[0][: 6 * SR] for i in range(args.clips)]
    speeches = [np.pad(clip, (0, 6 * SR - len(clip))) for clip in clips]  # every fragment 6 s
    dub_source = fleurs("fleurs-es-001")[0]
    dub = np.zeros(6 * SR, np.float32)
    dub[SR : 5 * SR] = dub_source[: 4 * SR]
    mixer = Mixer(LoudnessPolicy())
    latency: dict[str, list[float]] = {"dub_passthrough_ms": [], "voiceover_ms": [], "voiceover_loudness_ms": []}
    for speech in speeches:
        original = speech + music_bed(len(speech), SR, level=0.02)
        started = time.perf_counter()
        if mixer.needed(MixOptions("dub")):
            raise SystemExit("the default mix must skip the stage")
        latency["dub_passthrough_ms"].append((time.perf_counter() - started) * 1000)
        _, result = timed(lambda o=original: mixer.mix(o, SR, dub, MixOptions("voiceover")))
        latency["voiceover_ms"].append(result.timings_ms["voiceover_ms"])
        latency["voiceover_loudness_ms"].append(result.timings_ms["loudness_ms"])
    report: dict[str, object] = {
        "commit": commit(),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores (shared), {platform.python_version()}",
        "fragment_s": 6.0,
        "clips": args.clips,
        "beds": "music: synthesised chords (5 harmonics) + kick/hat beat; noise: 1/f noise. Bed 6 dB under speech.",
    }
    if not args.no_separation:
        from livedub.runtime.engines.separation_spleeter import SpleeterSeparator

        separator = SpleeterSeparator(ROOT / ".venv-separation" / "bin" / "python")
        started = time.perf_counter()
        separator.warm_up()
        report["separation_start_s"] = round(time.perf_counter() - started, 1)
        quality: dict[str, list[dict[str, float]]] = {"music": [], "noise": []}
        latency["background_separation_ms"] = []
        latency["background_loudness_ms"] = []
        for index, speech in enumerate(speeches):
            for kind, make in (("music", music_bed), ("noise", noise_bed)):
                bed = make(len(speech), SR)
                # Bed 6 dB under the speech, by RMS.
                bed = bed * (np.sqrt(np.mean(speech**2)) / np.sqrt(np.mean(bed**2)) / 2)
                mixture = (speech + bed).astype(np.float32)
                background = separator.background(mixture[:, None], SR)[:, 0]
                voice = mixture - background
                quality[kind].append(
                    {
                        "background_sdr_db": sdr(bed, background),
                        "background_input_sdr_db": sdr(bed, mixture),
                        "voice_sdr_db": sdr(speech, voice),
                        "voice_input_sdr_db": sdr(speech, mixture),
                    }
                )
            original = speech + music_bed(len(speech), SR, level=0.02)
            result = mixer.__class__(LoudnessPolicy(), separator).mix(original, SR, dub, MixOptions("background"))
            latency["background_separation_ms"].append(result.timings_ms["separation_ms"])
            latency["background_loudness_ms"].append(result.timings_ms["loudness_ms"])
            print(f"clip {index}: {quality['music'][-1]} {quality['noise'][-1]}", flush=True)
        report["sdr_db_mean"] = {
            kind: {key: round(statistics.mean(row[key] for row in rows), 2) for key in rows[0]}
            for kind, rows in quality.items()
        }
        report["sdr_db_median"] = {
            kind: {key: round(statistics.median(row[key] for row in rows), 2) for key in rows[0]}
            for kind, rows in quality.items()
        }
        report["sdr_db_per_clip"] = {
            kind: [round(row["background_sdr_db"], 2) for row in rows] for kind, rows in quality.items()
        }
        assert separator._process is not None
        report["separation_rss_mb"] = round(rss_mb(separator._process.pid), 0)
        separator.close()
    report["latency_ms_median"] = {key: round(statistics.median(values), 2) for key, values in latency.items()}
    report["runtime_rss_mb"] = round(rss_mb(), 0)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
