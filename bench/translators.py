"""Three translators side by side through the real pipeline: Apertium, the LLM, the LLM with a budget.

    nice -n 10 python bench/translators.py [--clips 10] [--tatoeba 100] [--threads 1]
        [--set fleurs,librivox,librivox-fast] [--only llm+budget] [--out translators.json]

For each translator, every English FLEURS clip is cut into the client's 6 s fragments and each
fragment goes through :class:`DubbingPipeline.process` exactly as a server runs it (embedded Whisper
base ASR, the translator, Kokoro, Rubber Band/Signalsmith, the duration policy). Per fragment with
speech: the tempo the speech played at (``speed_ratio``), its status, the processing time (sum of
the stage timings) and its ratio to the fragment's duration. Each dub is then re-transcribed in
Spanish and scored (WER) against its own ``translated_text``: intelligibility of what was said.

Only Whisper base ships with weights for Spanish (tiny.en is English-only, NOTES.md): the
re-transcription uses the same base weights as the ASR stage, so it is not an independent model.

Three speech sets, reported apart: ``fleurs`` (the 10 English FLEURS clips in ``data/``, which the
slot rules and prompts were tuned on), ``librivox`` (the five LibriVox clips of Debian's
``pocketsphinx-testdata``, held out: never looked at while tuning) and ``librivox-fast`` (the same
held-out clips played 1.25 times faster, pitch kept: lines too long for their slot, which the slot
fit's rewrites must shorten). Each row records which line was
spoken (``origin``: the slot fit's choice, pipeline/slotfit.py).

Each pipeline first dubs one warm-up fragment (not counted), as the server's warm-up does, so the
speaking rate is learned before the measured fragments. Tatoeba BLEU/chrF comes from
``bench/mt_llm.py``'s ``tatoeba`` on the same translators. Writes ``bench/results/translators.json``
and ``bench/results/translators_tempo.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.mt_llm import tatoeba
from bench.quality import wer
from livedub.runtime.audio.codec import DecodedAudio
from livedub.runtime.client.dub import WIRE_RATE, load_audio, split
from livedub.runtime.config import Settings
from livedub.runtime.engines.asr_whisper import WhisperRecognizer
from livedub.runtime.engines.base import Engines, TimeStretcher, Translator
from livedub.runtime.engines.mt_apertium import ApertiumTranslator
from livedub.runtime.engines.mt_llm import LlmTranslator
from livedub.runtime.engines.stretch import build_stretcher
from livedub.runtime.engines.tts_kokoro import KokoroSynthesizer
from livedub.runtime.metrics import Metrics
from livedub.runtime.pipeline.duration import DurationPolicy, trim_silence
from livedub.runtime.pipeline.pipeline import DubbingPipeline, FragmentJob, StageTimeouts
from livedub.runtime.pipeline.tempo import NATURAL_BAND

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "data").resolve()
RESULTS = ROOT / "bench" / "results"
FRAGMENT_S = 6.0
#: Held-out English speech (apt: pocketsphinx-testdata, hack/dev-apt-packages.txt).
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
SETS = ("fleurs", "librivox", "librivox-fast")
#: The speed-up of ``librivox-fast``: the narrator's 2.9 words/s (pauses included; FLEURS readers 2.3)
#: become 3.6, fast live speech (a sports commentator).
FAST_SPEECH = 1.25


def speech_files(name: str, clips: int) -> list[Path]:
    if name == "fleurs":
        return sorted((DATA / "fleurs").glob("fleurs-en-*.ogg"))[:clips]
    if name in ("librivox", "librivox-fast"):
        files = sorted(LIBRIVOX.glob("*.wav"))
        if not files:
            raise SystemExit(f"no LibriVox clips in {LIBRIVOX}: apt-get install pocketsphinx-testdata")
        return files
    raise SystemExit(f"unknown speech set {name!r} ({', '.join(SETS)})")


def speech_set(name: str, clips: int, stretcher: TimeStretcher) -> list[tuple[str, int, np.ndarray]]:
    """The set's clips cut into the client's fragments. ``librivox-fast``: the held-out clips played
    :data:`FAST_SPEECH` times faster (pitch kept), so that lines nobody tuned on run past the slot and the
    slot fit's rewrites have to act; the narrator reads slowly, the fast set reads like live news."""
    out = []
    for path in speech_files(name, clips):
        audio = load_audio(path)
        if name == "librivox-fast":
            audio = stretcher.stretch(audio, WIRE_RATE, FAST_SPEECH)
        out += [(path.stem, index, samples) for index, samples in enumerate(split(audio, FRAGMENT_S))]
    return out


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3) if values else 0.0


def pipeline_for(engines: Engines, settings: Settings, budget: bool) -> DubbingPipeline:
    # Generous stage timeouts: this measures quality and time taken, not the deadline policy (an LLM
    # call took over 60 s under load; at 120 s the slot fit timed out and kept the first line).
    return DubbingPipeline(
        engines,
        ThreadPoolExecutor(2),
        timeouts=StageTimeouts(60, 600, 120, 60),
        policy=DurationPolicy(
            settings.speed_ratio_min,
            settings.speed_ratio_max,
            settings.duration_variance_success_max,
            settings.duration_variance_partial_max,
        ),
        metrics=Metrics(),
        translation_budget=budget,
    )


async def dub_clips(
    label: str, pipeline: DubbingPipeline, fragments: list[tuple[str, int, np.ndarray]], asr: WhisperRecognizer
) -> list[dict[str, Any]]:
    def job(samples: np.ndarray) -> FragmentJob:
        return FragmentJob(DecodedAudio(samples, WIRE_RATE, 1), "en", "es")

    await pipeline.process(job(fragments[0][2]))  # warm-up: the speaking rate is learned, not counted
    rows: list[dict[str, Any]] = []
    previous = ""
    for name, index, samples in fragments:
        started = time.perf_counter()
        outcome = await pipeline.process(replace(job(samples), previous_transcript=previous))
        wall_ms = (time.perf_counter() - started) * 1000
        previous = outcome.transcript
        if not outcome.translation:  # silence: no speech to time or to hear
            continue
        assert outcome.audio is not None
        heard = asr.transcribe(trim_silence(outcome.audio, WIRE_RATE), language="es").text
        processing_ms = sum(outcome.timings_ms.values())
        row = {
            "clip": name,
            "fragment": index,
            "fragment_s": round(len(samples) / WIRE_RATE, 2),
            "transcript": outcome.transcript,
            "translation": outcome.translation,
            "heard": heard,
            "wer": round(wer(outcome.translation, heard), 3),
            "speed_ratio": round(outcome.speed_ratio, 3),
            "status": outcome.status,
            "origin": outcome.translation_origin,
            "samples_exact": bool(len(outcome.audio) == len(samples)),
            "processing_ms": processing_ms,
            "wall_ms": round(wall_ms),
            "timings_ms": outcome.timings_ms,
        }
        print(
            f"{label} {name}#{index}: tempo {row['speed_ratio']:.2f} wer {row['wer']:.2f} "
            f"{processing_ms} ms | {outcome.translation}",
            flush=True,
        )
        rows.append(row)
    return rows


def summarise(rows: list[dict[str, Any]], clamp: float) -> dict[str, Any]:
    import jiwer

    from bench.quality import _normalise

    tempos = [r["speed_ratio"] for r in rows]
    ratio = [r["processing_ms"] / 1000 / r["fragment_s"] for r in rows]
    refs = [_normalise(r["translation"]) for r in rows]
    hyps = [_normalise(r["heard"]) or "<empty>" for r in rows]
    return {
        "speech_fragments": len(rows),
        "natural_tempo_share": round(sum(NATURAL_BAND[0] <= t <= NATURAL_BAND[1] for t in tempos) / len(rows), 3),
        "at_clamp_share": round(sum(t >= clamp - 1e-6 for t in tempos) / len(rows), 3),
        "tempo_p10": percentile(tempos, 10),
        "tempo_median": percentile(tempos, 50),
        "tempo_p90": percentile(tempos, 90),
        "intelligibility_wer": round(float(jiwer.wer(refs, hyps)), 3),
        "processing_ms_p50": round(percentile([r["processing_ms"] for r in rows], 50)),
        "processing_ms_p95": round(percentile([r["processing_ms"] for r in rows], 95)),
        "processing_to_fragment_p50": percentile(ratio, 50),
        "processing_to_fragment_p95": percentile(ratio, 95),
        "statuses": {s: sum(r["status"] == s for r in rows) for s in ("success", "partial", "failed")},
        "samples_exact_share": round(sum(r["samples_exact"] for r in rows) / len(rows), 3),
        "origins": {
            o: sum(r.get("origin", "first") == o for r in rows)
            for o in sorted({r.get("origin", "first") for r in rows})
        },
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = [name for name in SETS if result.get(name)]
    fig, axes = plt.subplots(1, len(sets), figsize=(7 * len(sets), 3.8), squeeze=False)
    bins = np.arange(0.7, 1.65, 0.05)
    for ax, name in zip(axes[0], sets, strict=True):
        for label, summary in result[name].items():
            tempos = [r["speed_ratio"] for r in summary["fragments"]]
            ax.hist(tempos, bins=bins, histtype="step", linewidth=2, label=f"{label} ({len(tempos)} fragments)")
        ax.axvspan(*NATURAL_BAND, alpha=0.12, color="green", label="natural 0.85-1.2")
        ax.set_xlabel("tempo the dub's speech plays at (speed_ratio)")
        ax.set_ylabel("speech fragments")
        ax.set_title(f"en→es {name}, Kokoro, per translator ({result['commit']})")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=10, help="English FLEURS clips (10 in the data)")
    parser.add_argument("--tatoeba", type=int, default=100, help="Tatoeba lines for BLEU/chrF (0: skip)")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp CPU threads")
    parser.add_argument("--set", default="fleurs,librivox", help=f"speech sets, comma-separated: {', '.join(SETS)}")
    parser.add_argument("--only", default="", help="translators to run, comma-separated (default: all three)")
    parser.add_argument("--out", default="translators.json", help="file name under bench/results/")
    args = parser.parse_args()
    settings = Settings(_env_file=None)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    asr = WhisperRecognizer("embedded", cpu_threads=settings.asr_cpu_threads)
    tts = KokoroSynthesizer(cpu_threads=settings.tts_cpu_threads)
    stretcher = build_stretcher(settings.stretch_engine)
    apertium = ApertiumTranslator()
    llm = LlmTranslator(cpu_threads=args.threads, fallback=apertium)
    translators: dict[str, tuple[Translator, bool]] = {
        "apertium": (apertium, False),
        "llm": (llm, False),
        "llm+budget": (llm, True),
    }
    if args.only:
        translators = {k: v for k, v in translators.items() if k in args.only.split(",")}
    speech = {name: speech_set(name, args.clips, stretcher) for name in args.set.split(",")}
    result: dict[str, Any] = {
        "commit": commit.stdout.strip(),
        # The load before the run says whether its times were taken on a quiet machine.
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, no GPU, load {os.getloadavg()[0]:.2f} at start",
        "model": llm.model_path.name,
        "llm_cpu_threads": args.threads,
        "asr": asr.name,
        "retranscription": f"{asr.name} (the same weights as ASR: no independent Spanish Whisper ships)",
        "tts": tts.name,
        "stretcher": stretcher.name if hasattr(stretcher, "name") else type(stretcher).__name__,
        "clips": args.clips,
        **{name: {} for name in speech},
    }
    for (label, (translator, budget)), name in ((t, n) for n in speech for t in translators.items()):
        fragments = speech[name]
        engines = Engines(asr=asr, translator=translator, tts=tts, stretcher=stretcher)
        pipeline = pipeline_for(engines, settings, budget)
        fallbacks_before, retries_before, guards_before = llm.fallback_total, llm.retry_total, dict(llm.guard_by_reason)
        rows = asyncio.run(dub_clips(f"{name}/{label}", pipeline, fragments, asr))
        summary = summarise(rows, settings.speed_ratio_max)
        if translator is llm:
            summary["llm_fallbacks"] = llm.fallback_total - fallbacks_before
            summary["llm_guard_by_reason"] = {
                k: v - guards_before.get(k, 0) for k, v in llm.guard_by_reason.items() if v > guards_before.get(k, 0)
            }
            summary["llm_retries"] = llm.retry_total - retries_before  # in-translator and post-synthesis
        # Post-synthesis "shorter" rewrites (sts_translation_rewrites_total), warm-up included.
        summary["rewrites"] = int(pipeline.metrics.translation_rewrites._value.get())
        print(json.dumps({f"{name}/{label}": summary}), flush=True)
        result[name][label] = {**summary, "fragments": rows}
        write(result, args.out)  # after each translator: a long run stopped early keeps what it measured
    if args.tatoeba:
        result["tatoeba"] = [
            {k: v for k, v in row.items() if k != "examples"} for row in tatoeba(translators, args.tatoeba)
        ]
        write(result, args.out)


def write(result: dict[str, Any], name: str = "translators.json") -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / name
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    try:
        plot(result, out.with_name(out.stem + "_tempo.png"))
    except Exception as exc:  # never lose the figures to a plot
        print(f"no plot: {exc!r}")
    print(f"wrote {out}", flush=True)


if __name__ == "__main__":
    main()
