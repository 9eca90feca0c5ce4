"""Profile the real dubbing pipeline stage by stage on FLEURS fragments (issue 5: latency targets).

One command (about 2-3 minutes on the 2-core CPU machine)::

    .venv/bin/python -m bench.profile_stages [--fragments 8] [--profiler py-spy|pyinstrument|none]

What it does, with the embedded default engines (``Settings()`` as ``livedub serve`` builds them):

1. **Pipeline pass**: the first N English FLEURS clips cut to 6 s fragments go one after another
   through the service's own :class:`DubbingPipeline` (en → es), exactly as a live stream's fragments
   do, with a sampling profiler attached: py-spy (``--idle``, every thread, so time CTranslate2
   spends waiting on its own worker threads is counted) or pyinstrument (main thread only, so it
   profiles a synchronous replica of the same engine calls).
2. **TTS breakdown**: Kokoro again on the pass's translations: phonemisation (espeak-ng) vs
   onnxruntime vs the rest, then onnxruntime's own per-operator profiler on a second session
   (per-node profiling slows the run, so only its shares are meaningful).
3. **ASR breakdown**: Silero VAD, log-mel, Whisper encoder and decoder timed one by one on the
   same fragments (faster-whisper's public pieces; the engine's code is not touched).

Writes ``bench/results/profile/``: ``stages.json`` (per fragment: processing / duration and every
stage in ms; medians and shares), ``tts_breakdown.json``, ``asr_breakdown.json``,
``pipeline.speedscope.json`` (py-spy; open in https://www.speedscope.app) or ``pipeline.pyinstrument.html``,
``profile_summary.json`` (where the sampled time went, per stage and sub-stage) and ``summary.txt``.
Other processes on the machine change the absolute numbers; compare shares and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "profile"
SOURCE, TARGET = "en", "es"

#: Where a sampled stack belongs: the first (innermost) frame whose file matches decides.
STAGE_FILES = (
    ("tts", ("tts_kokoro.py", "kokoro_onnx/", "phonemizer/")),
    ("asr", ("asr_whisper.py", "faster_whisper/", "pipeline/batcher.py")),
    ("translation", ("mt_apertium.py", "mt_cache.py", "mt_fallback.py")),
    ("duration_match", ("engines/stretch.py", "pipeline/duration.py", "pyrubberband/")),
)
#: Finer split inside a stage, by function name anywhere in the stack (first match wins).
SUBSTAGES = {
    "tts": (
        ("onnxruntime run", ("Session.run", "run")),
        ("phonemise (espeak-ng)", ("phonemize",)),
    ),
    "asr": (
        ("VAD (Silero)", ("get_speech_timestamps",)),
        ("log-mel", ("FeatureExtractor.__call__", "__call__", "stft", "_features")),
        ("Whisper encode+decode (CTranslate2)", ("_generate", "encode", "generate")),
    ),
    "duration_match": (("stretch (subprocess)", ("stretch", "time_stretch")), ("resample", ("resample",))),
}


def log(message: str) -> None:
    print(f"[profile {time.strftime('%H:%M:%S')}] {message}", flush=True)


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


# --- set-up ----------------------------------------------------------------------------------------


def build() -> tuple[Any, Any]:
    """The engines and the pipeline, built the way ``livedub serve`` builds them."""
    from livedub.runtime.config import Settings
    from livedub.runtime.engines.factory import build_engines
    from livedub.runtime.metrics import Metrics
    from livedub.runtime.server.service import DubbingService

    settings = Settings(_env_file=None)
    started = time.perf_counter()
    engines = build_engines(settings)
    log(f"engines loaded in {time.perf_counter() - started:.1f} s: {engines.describe()}")

    async def emit(*_: Any) -> None:
        return None

    service = DubbingService(settings, Metrics(), emit=emit)
    service.attach_engines(engines)
    return engines, service.pipeline


def fragments(count: int) -> list[np.ndarray]:
    from bench.scenarios import english_fragments

    clips = english_fragments()[:count]
    log(f"{len(clips)} fragments, {sum(len(c) for c in clips) / 16000:.1f} s of FLEURS English speech")
    return clips


def job(samples: np.ndarray) -> Any:
    from livedub.runtime.audio.codec import DecodedAudio
    from livedub.runtime.pipeline.pipeline import FragmentJob

    return FragmentJob(audio=DecodedAudio(samples, 16000, 1), source_language=SOURCE, target_language=TARGET)


def kokoro_of(engines: Any) -> Any:
    tts = engines.tts
    if hasattr(tts, "engine_for"):
        tts = tts.engine_for(TARGET)
    return getattr(tts, "_kokoro", None)


# --- pass 1: the pipeline under a sampler ----------------------------------------------------------


class PySpy:
    """py-spy sampling this very process (``--nonblocking``: it never pauses the pipeline)."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PySpy:
        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        command = [exe, "record", "--pid", str(os.getpid()), "--idle", "--nonblocking", "--rate", "100"]
        command += ["--format", "speedscope", "--output", str(self.output)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(1.0)  # let it attach before the first fragment
        if self.process.poll() is not None:
            raise RuntimeError(f"py-spy exited: {self.process.stdout.read().decode() if self.process.stdout else ''}")
        return self

    def __exit__(self, *_: Any) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def run_pipeline(pipeline: Any, clips: list[np.ndarray]) -> list[dict[str, Any]]:
    rows = []

    async def go() -> None:
        for index, samples in enumerate(clips):
            started = time.perf_counter()
            outcome = await pipeline.process(job(samples))
            wall_ms = (time.perf_counter() - started) * 1000
            duration_s = len(samples) / 16000
            rows.append(
                {
                    "fragment": index,
                    "duration_s": duration_s,
                    "processing_ms": wall_ms,
                    "processing_over_duration": wall_ms / 1000 / duration_s,
                    "status": outcome.status,
                    "stages_ms": dict(outcome.timings_ms),
                    "transcript": outcome.transcript,
                    "translation": outcome.translation,
                    "speed_ratio": outcome.speed_ratio,
                }
            )
            log(
                f"fragment {index + 1}/{len(clips)}: {wall_ms / 1000:.2f} s for {duration_s:.1f} s "
                f"({wall_ms / 1000 / duration_s:.2f}x) {outcome.timings_ms}"
            )

    asyncio.run(go())
    return rows


def replica(engines: Any, clips: list[np.ndarray]) -> None:
    """The pipeline's engine calls, synchronously on this thread (for pyinstrument)."""
    from livedub.runtime.audio.codec import resample

    for samples in clips:
        transcript = engines.asr.transcribe(samples, language=SOURCE)
        if not transcript.text:
            continue
        text = engines.translator.translate(transcript.text, source=SOURCE, target=TARGET)
        speech = engines.tts.synthesize(text, language=TARGET)
        voiced = resample(speech.audio, speech.sample_rate, 16000)
        engines.stretcher.stretch(voiced, 16000, max(0.8, min(1.25, len(voiced) / len(samples))))


def summarise_speedscope(path: Path) -> dict[str, Any]:
    """Seconds of sampled wall time per stage and sub-stage, from py-spy's speedscope file."""
    data = json.loads(path.read_text())
    frames = data["shared"]["frames"]
    stage_s: collections.Counter[str] = collections.Counter()
    sub_s: collections.Counter[tuple[str, str]] = collections.Counter()
    for profile in data["profiles"]:
        unit = {"seconds": 1.0, "milliseconds": 1e-3, "microseconds": 1e-6}.get(profile.get("unit", "seconds"), 1.0)
        for stack, weight in zip(profile["samples"], profile["weights"], strict=False):
            names = [(frames[i].get("name", ""), frames[i].get("file", "") or "") for i in stack]
            stage = next(
                (s for s, files in STAGE_FILES for _, file in reversed(names) if any(f in file for f in files)), None
            )
            if stage is None:
                continue
            seconds = weight * unit
            stage_s[stage] += seconds
            sub = next(
                (
                    label
                    for label, funcs in SUBSTAGES.get(stage, ())
                    for name, _ in reversed(names)
                    if name in funcs or name.split(".")[-1] in funcs
                ),
                "other",
            )
            sub_s[(stage, sub)] += seconds
    total = sum(stage_s.values()) or 1.0
    return {
        "sampled_stage_s": {k: round(v, 3) for k, v in stage_s.most_common()},
        "sampled_stage_share": {k: round(v / total, 3) for k, v in stage_s.most_common()},
        "sampled_substage_s": {f"{s} / {n}": round(v, 3) for (s, n), v in sub_s.most_common()},
    }


# --- pass 2: TTS breakdown -------------------------------------------------------------------------


class TimedSession:
    """Stands in for the onnxruntime session and adds up the time spent in ``run``."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.seconds = 0.0

    def run(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self._session.run(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def tts_breakdown(engines: Any, texts: list[str]) -> dict[str, Any]:
    kokoro = kokoro_of(engines)
    if kokoro is None:
        return {"skipped": f"TTS is {engines.tts.name}, not Kokoro"}
    from livedub.runtime.engines.tts_kokoro import FEMALE, LANGUAGES

    lang = LANGUAGES[TARGET]
    rows = []
    original = kokoro.sess
    timed = TimedSession(original)
    kokoro.sess = timed
    try:
        for text in texts:
            started = time.perf_counter()
            phonemes = kokoro.tokenizer.phonemize(text, lang)
            phonemise_s = time.perf_counter() - started
            timed.seconds = 0.0
            started = time.perf_counter()
            audio, rate = kokoro.create(text, voice=FEMALE, lang=lang)
            total_s = time.perf_counter() - started
            rows.append(
                {
                    "chars": len(text),
                    "phonemes": len(phonemes),
                    "audio_s": len(audio) / rate,
                    "create_s": total_s,
                    "phonemise_s": phonemise_s,
                    "onnxruntime_s": timed.seconds,
                    "rtf": total_s / max(1e-9, len(audio) / rate),
                }
            )
    finally:
        kokoro.sess = original
    result: dict[str, Any] = {
        "fragments": rows,
        "median": {k: median([r[k] for r in rows]) for k in ("create_s", "phonemise_s", "onnxruntime_s", "rtf")},
        "onnxruntime_share": sum(r["onnxruntime_s"] for r in rows) / max(1e-9, sum(r["create_s"] for r in rows)),
        "session_options": session_options(original),
    }
    result["operators"] = tts_operators(texts)
    return result


def session_options(session: Any) -> dict[str, Any]:
    options = session.get_session_options()
    return {
        "intra_op_num_threads": options.intra_op_num_threads,
        "inter_op_num_threads": options.inter_op_num_threads,
        "execution_mode": str(options.execution_mode),
        "graph_optimization_level": str(options.graph_optimization_level),
        "providers": session.get_providers(),
    }


def tts_operators(texts: list[str]) -> dict[str, Any]:
    """onnxruntime's per-node profiler on a second Kokoro session: time per operator and per module."""
    import onnxruntime as rt
    from kokoro_onnx import Kokoro

    from livedub.runtime.engines.tts_kokoro import FEMALE, LANGUAGES, _packaged

    parts, _, voices = _packaged()
    with tempfile.TemporaryDirectory() as tmp:
        options = rt.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "kokoro")
        options.log_severity_level = 3
        session = rt.InferenceSession(b"".join(p.read_bytes() for p in parts), options, ["CPUExecutionProvider"])
        session._model_path = str(parts[0])  # as tts_kokoro.load_in_memory does
        kokoro = Kokoro.from_session(session, str(voices))
        for text in texts:
            kokoro.create(text, voice=FEMALE, lang=LANGUAGES[TARGET])
        events = json.loads(Path(session.end_profiling()).read_text())
    by_op: collections.Counter[str] = collections.Counter()
    by_module: collections.Counter[str] = collections.Counter()
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        by_op[event["args"]["op_name"]] += event["dur"]
        name = event["name"].removesuffix("_kernel_time").lstrip("/")
        by_module["/".join(name.replace(".", "/").split("/")[:3])] += event["dur"]
    total = sum(by_op.values()) or 1
    return {
        "note": "shares of onnxruntime kernel time with per-node profiling on (which slows small ops)",
        "by_operator": {k: round(v / total, 4) for k, v in by_op.most_common(15)},
        "by_module": {k: round(v / total, 4) for k, v in by_module.most_common(12)},
    }


# --- pass 3: ASR breakdown -------------------------------------------------------------------------


def asr_breakdown(engines: Any, clips: list[np.ndarray]) -> dict[str, Any]:
    model = getattr(engines.asr, "model", None)
    if model is None or not hasattr(model, "feature_extractor"):
        return {"skipped": f"ASR is {engines.asr.name}, not faster-whisper"}
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.vad import get_speech_timestamps

    from livedub.runtime.engines.asr_whisper import VAD

    extractor = model.feature_extractor
    multilingual = bool(model.model.is_multilingual)
    tokenizer = Tokenizer(model.hf_tokenizer, multilingual, task="transcribe", language=SOURCE)
    prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
    rows = []
    for samples in clips:
        timings = {}
        started = time.perf_counter()
        speech = get_speech_timestamps(samples, VAD)
        timings["vad_s"] = time.perf_counter() - started
        if not speech:
            continue
        window = samples[speech[0]["start"] : speech[-1]["end"]]
        started = time.perf_counter()
        features = pad_or_trim(extractor(window)[:, :-1], extractor.nb_max_frames)[None].astype(np.float32)
        timings["log_mel_s"] = time.perf_counter() - started
        started = time.perf_counter()
        encoded = model.encode(features)
        timings["encode_s"] = time.perf_counter() - started
        started = time.perf_counter()
        output = model.model.generate(encoded, [prompt], beam_size=1, max_length=448)
        timings["decode_s"] = time.perf_counter() - started
        timings["tokens"] = len(output[0].sequences_ids[0])
        timings["speech_s"] = len(window) / 16000
        rows.append(timings)
    keys = ("vad_s", "log_mel_s", "encode_s", "decode_s")
    total = sum(sum(r[k] for k in keys) for r in rows) or 1.0
    return {
        "fragments": rows,
        "median": {k: median([r[k] for r in rows]) for k in keys},
        "share": {k: sum(r[k] for r in rows) / total for k in keys},
        "note": "the encoder always sees 30 s (3000 frames): speech is padded to Whisper's window",
    }


# --- report ----------------------------------------------------------------------------------------


def summary_text(stages: dict[str, Any], sampled: dict[str, Any], tts: dict[str, Any], asr: dict[str, Any]) -> str:
    lines = [f"Profile of {stages['fragments']} FLEURS en->es fragments, engines {stages['engines']}", ""]
    ratio = stages["processing_over_duration"]
    lines.append(
        f"processing / duration: p50 {ratio['p50']:.2f}, max {ratio['max']:.2f} (targets p50 <= 0.40, p95 <= 0.60)"
    )
    lines.append("stage medians (ms) and share of summed stage time:")
    for stage, figures in stages["stages_ms"].items():
        lines.append(f"  {stage:18s} {figures['p50']:7.0f} ms  {100 * figures['share']:5.1f} %")
    if sampled:
        lines.append("py-spy sampled wall time per stage / sub-stage (s):")
        lines += [f"  {k:50s} {v:6.2f}" for k, v in sampled.get("sampled_substage_s", {}).items()]
    if "median" in tts:
        m = tts["median"]
        lines.append(
            f"TTS (Kokoro) per fragment: {m['create_s']:.2f} s, RTF {m['rtf']:.2f}; onnxruntime "
            f"{100 * tts['onnxruntime_share']:.1f} % of it, phonemisation {1000 * m['phonemise_s']:.1f} ms"
        )
        ops = tts["operators"]["by_operator"]
        lines.append("  onnxruntime operators: " + ", ".join(f"{k} {100 * v:.0f} %" for k, v in list(ops.items())[:6]))
        mods = tts["operators"]["by_module"]
        lines.append("  onnxruntime modules: " + ", ".join(f"{k} {100 * v:.0f} %" for k, v in list(mods.items())[:3]))
    if "median" in asr:
        m = asr["median"]
        lines.append(
            "ASR (Whisper) per fragment: "
            + ", ".join(
                f"{k.removesuffix('_s')} {1000 * v:.0f} ms ({100 * asr['share'][k]:.0f} %)" for k, v in m.items()
            )
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fragments", type=int, default=8)
    parser.add_argument("--profiler", choices=["py-spy", "pyinstrument", "none"], default="py-spy")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    profiler = args.profiler
    if profiler == "py-spy" and not (shutil.which("py-spy") or Path(sys.executable).with_name("py-spy").exists()):
        log("py-spy is not installed: falling back to pyinstrument")
        profiler = "pyinstrument"

    engines, pipeline = build()
    clips = fragments(args.fragments)
    log("warm-up fragment")
    run_pipeline(pipeline, clips[:1])

    log(f"pass 1/3: pipeline, sampled by {profiler}")
    sampled: dict[str, Any] = {}
    if profiler == "py-spy":
        speedscope = args.out / "pipeline.speedscope.json"
        with PySpy(speedscope):
            rows = run_pipeline(pipeline, clips)
        sampled = summarise_speedscope(speedscope)
        (args.out / "profile_summary.json").write_text(json.dumps(sampled, indent=1) + "\n")
    else:
        rows = run_pipeline(pipeline, clips)
        if profiler == "pyinstrument":
            from pyinstrument import Profiler

            with Profiler(interval=0.005) as prof:
                replica(engines, clips)
            (args.out / "pipeline.pyinstrument.html").write_text(prof.output_html())
            (args.out / "pipeline.pyinstrument.txt").write_text(prof.output_text(unicode=False, color=False))

    speech = [r for r in rows if r["translation"]]
    keys = sorted({k for r in speech for k in r["stages_ms"]})
    stage_total = sum(sum(r["stages_ms"].get(k, 0) for k in keys) for r in speech) or 1
    ratios = [r["processing_over_duration"] for r in rows]
    stages = {
        "fragments": len(rows),
        "engines": engines.describe(),
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "processing_over_duration": {"p50": median(ratios), "max": max(ratios), "values": ratios},
        "stages_ms": {
            k: {
                "p50": median([r["stages_ms"].get(k, 0) for r in speech]),
                "share": sum(r["stages_ms"].get(k, 0) for r in speech) / stage_total,
            }
            for k in keys
        },
        "rows": rows,
    }
    (args.out / "stages.json").write_text(json.dumps(stages, indent=1, ensure_ascii=False) + "\n")

    log("pass 2/3: TTS breakdown (phonemise / onnxruntime, then per-operator profile)")
    tts = tts_breakdown(engines, [r["translation"] for r in speech])
    (args.out / "tts_breakdown.json").write_text(json.dumps(tts, indent=1) + "\n")

    log("pass 3/3: ASR breakdown (VAD / log-mel / encoder / decoder)")
    asr = asr_breakdown(engines, clips)
    (args.out / "asr_breakdown.json").write_text(json.dumps(asr, indent=1) + "\n")

    text = summary_text(stages, sampled, tts, asr)
    (args.out / "summary.txt").write_text(text)
    print(text)
    log(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
