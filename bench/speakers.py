"""Speakers and captions: speaker accuracy on FLEURS streams, per-stage cost, and the default path.

    nice -n 10 python -m bench.speakers [--streams 20] [--repeats 3] [--voices]

1. Speaker accuracy: random streams of 6 s pieces of the four FLEURS speakers of
   tests/support/speakers.py (two men, two women; en and es), each stream 8-16 fragments of 2-4
   speakers. Every piece is embedded once with the real encoder; each stream runs through a fresh
   SpeakerTracker in stream order. Reported: purity (fraction of fragments whose label's majority
   speaker is theirs), label accuracy under the best one-to-one label↔speaker mapping, and how
   often the number of speakers found equals the truth. Whole pieces are embedded here (FLEURS
   pieces are read speech with little silence); the runtime embeds the ASR's word spans.
2. Cost: embedding and pitch ms per 6 s fragment, caption building ms, RSS added by the model.
3. Default path unchanged: the real pipeline (Whisper, MT, Kokoro, stretch) on the same fragment,
   interleaved, with speakers and captions off and on, in the same run: medians of ``--repeats``.
4. ``--voices``: each packaged Kokoro voice's median pitch (pYIN), the table the caster uses.

Writes bench/results/speakers.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench.run import RESULTS, ROOT, machine

sys.path.insert(0, str(ROOT / "tests"))
from support.speakers import GENDER, RATE, SPEAKERS, piece, pyin_f0


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pieces() -> list[tuple[str, np.ndarray]]:
    out = []
    for who, clips in SPEAKERS.items():
        for clip in clips:
            for index in itertools.count():
                audio = piece(clip, index)
                if len(audio) < 3 * RATE:
                    break
                out.append((who, audio))
    return out


def accuracy(embedder: Any, streams: int, seed: int = 0) -> dict[str, Any]:
    from livedub.runtime.engines.speaker_embedding import median_f0
    from livedub.runtime.pipeline.speakers import DEFAULT_THRESHOLD, KOKORO_VOICE_F0, SpeakerTracker, VoiceCaster

    items = pieces()
    embed_ms, f0_ms, vectors, pitches = [], [], [], []
    for _, audio in items:
        t = time.perf_counter()
        vectors.append(embedder.embed(audio))
        embed_ms.append((time.perf_counter() - t) * 1000 * 6 * RATE / len(audio))
        t = time.perf_counter()
        pitches.append(median_f0(audio))
        f0_ms.append((time.perf_counter() - t) * 1000 * 6 * RATE / len(audio))
    rng = np.random.default_rng(seed)
    purity, label_acc, count_ok, gender_ok, total = 0, 0, 0, 0, 0
    per_stream = []
    for _ in range(streams):
        who = list(rng.choice(list(SPEAKERS), size=int(rng.integers(2, 5)), replace=False))
        pool = [i for i, (w, _) in enumerate(items) if w in who]
        order = list(rng.choice(pool, size=min(len(pool), int(rng.integers(8, 17))), replace=False))
        tracker = SpeakerTracker("bench", caster=VoiceCaster(frozenset(KOKORO_VOICE_F0)))
        labels, truth = [], []
        for i in order:
            speaker, _ = tracker.assign(vectors[i], pitches[i])
            assert speaker is not None
            labels.append(speaker.label)
            truth.append(items[i][0])
        pairs = list(zip(labels, truth, strict=True))
        majority = {x: max(set(truth), key=lambda t, x=x: pairs.count((x, t))) for x in set(labels)}
        # Purity: each label counts its majority speaker's fragments.
        purity += sum(pairs.count((x, t)) for x, t in majority.items())
        # Label accuracy: the best one-to-one mapping of labels to speakers.
        found, real = sorted(set(labels)), sorted(set(truth))
        label_acc += max(
            sum(pairs.count((x, t)) for x, t in zip(found, perm, strict=False))
            for perm in itertools.permutations(real, min(len(found), len(real)))
        )
        total += len(order)
        count_ok += len(found) == len(real)
        gender_ok += all(s.gender == GENDER[majority[s.label]] for s in tracker.speakers)
        per_stream.append({"speakers": len(set(truth)), "found": len(set(labels)), "fragments": len(order)})
    return {
        "threshold": DEFAULT_THRESHOLD,
        "pieces": len(items),
        "streams": streams,
        "fragments": total,
        "purity": round(purity / total, 4),
        "label_accuracy": round(label_acc / total, 4),
        "speaker_count_exact": round(count_ok / streams, 4),
        "speaker_gender_right": round(gender_ok / streams, 4),
        "embed_ms_per_6s": round(statistics.median(embed_ms), 1),
        "f0_ms_per_6s": round(statistics.median(f0_ms), 1),
        "per_stream": per_stream,
    }


def voice_pitch() -> dict[str, float]:
    import librosa

    from livedub.runtime.engines.base import VoiceProfile
    from livedub.runtime.engines.tts_kokoro import KokoroSynthesizer

    kokoro = KokoroSynthesizer()
    out = {}
    for name in sorted(kokoro.voices):
        speech = kokoro.synthesize(
            "Hola, buenos días. Las noticias de hoy empiezan con el tiempo en la ciudad.",
            language="es",
            voice=VoiceProfile(name=name, language="es", speaker=name),
        )
        out[name] = round(pyin_f0(librosa.resample(speech.audio, orig_sr=speech.sample_rate, target_sr=RATE)))
    return out


async def default_path(repeats: int, embedder: Any) -> dict[str, Any]:
    """The real pipeline, interleaved: plain stream vs speakers + captions, same fragment, same run."""
    from livedub.runtime.audio.codec import DecodedAudio
    from livedub.runtime.config import Settings
    from livedub.runtime.engines.factory import build_engines
    from livedub.runtime.metrics import Metrics
    from livedub.runtime.pipeline.captions import build as build_captions
    from livedub.runtime.pipeline.duration import DurationPolicy
    from livedub.runtime.pipeline.pipeline import DubbingPipeline, FragmentJob, StageTimeouts
    from livedub.runtime.pipeline.speakers import LazyEmbedder, SpeakerTracker, caster_for

    engines = build_engines(Settings(_env_file=None))
    pipeline = DubbingPipeline(
        engines,
        ThreadPoolExecutor(4),
        timeouts=StageTimeouts(120, 120, 120, 120),
        policy=DurationPolicy(0.8, 1.25, 0.05, 0.15),
        metrics=Metrics(),
        speaker_embedder=LazyEmbedder(lambda: embedder),
    )
    audio = DecodedAudio(piece("fleurs-en-001"), RATE, 1)
    runs: dict[str, list[dict[str, int]]] = {"default": [], "speakers_captions": []}
    for _ in range(repeats):
        for mode in runs:
            tracker = SpeakerTracker("b", caster=caster_for(engines.tts, "es")) if mode != "default" else None
            job = FragmentJob(audio, "en", "es", speakers=tracker, captions=mode != "default")
            started = time.perf_counter()
            outcome = await pipeline.process(job)
            timings = dict(outcome.timings_ms, total_ms=int((time.perf_counter() - started) * 1000))
            runs[mode].append(timings)
            last = outcome
    assert last.audio is not None
    t = time.perf_counter()
    for _ in range(20):
        # Target cues from the real dub; the source side (word grouping) is cheaper still.
        build_captions((), last.translation, last.audio, RATE, "S1")
    captions_ms = (time.perf_counter() - t) * 1000 / 20
    pipeline.close()

    def med(mode: str, key: str) -> float | None:
        values = [r[key] for r in runs[mode] if key in r]
        return statistics.median(values) if values else None

    keys = ["asr_ms", "translation_ms", "tts_ms", "duration_match_ms", "speaker_ms", "captions_ms", "total_ms"]
    return {
        "repeats": repeats,
        "fragment": "fleurs-en-001, first 6 s",
        "median_ms": {mode: {k: med(mode, k) for k in keys} for mode in runs},
        "captions_build_ms": round(captions_ms, 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--voices", action="store_true", help="also measure the Kokoro voices' pitch")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the default-path comparison")
    args = parser.parse_args(argv)
    from livedub.runtime.engines.speaker_embedding import SpeakerEmbedder

    before = rss_mb()
    t = time.perf_counter()
    embedder = SpeakerEmbedder()
    load_s = time.perf_counter() - t
    result: dict[str, Any] = {
        "machine": machine(),
        "model": {"name": embedder.name, "load_s": round(load_s, 2), "rss_added_mb": round(rss_mb() - before, 1)},
        "accuracy": accuracy(embedder, args.streams),
    }
    a = result["accuracy"]
    print(f"model load {load_s:.1f} s (incl. numba warm-up), +{result['model']['rss_added_mb']} MB RSS")
    print(
        f"{a['streams']} streams, {a['fragments']} fragments: purity {a['purity']:.1%}, label accuracy "
        f"{a['label_accuracy']:.1%}, speaker count exact {a['speaker_count_exact']:.0%}, gender right "
        f"{a['speaker_gender_right']:.0%}; embed {a['embed_ms_per_6s']} ms, pitch {a['f0_ms_per_6s']} ms per 6 s"
    )
    if args.voices:
        result["kokoro_voice_f0"] = voice_pitch()
        print("Kokoro voice pitch:", result["kokoro_voice_f0"])
    if not args.no_pipeline:
        result["pipeline"] = asyncio.run(default_path(args.repeats, embedder))
        for mode, timings in result["pipeline"]["median_ms"].items():
            print(f"{mode:18}", "  ".join(f"{k} {v}" for k, v in timings.items() if v is not None))
        print(f"captions build {result['pipeline']['captions_build_ms']} ms")
    out = RESULTS / "speakers.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
