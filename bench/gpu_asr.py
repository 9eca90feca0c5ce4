"""faster-whisper on CUDA: the runtime's own ASR engine, single-fragment latency and batched throughput.

Runs ``WhisperRecognizer`` (runtime/src/livedub/runtime/engines/asr_whisper.py, the class the server uses) on each
device/compute type given, over real FLEURS speech:

* correctness: every FLEURS clip (en/es/fr/de) transcribed whole; transcripts are written out so the
  WER against the references is computed where jiwer is installed (``--wer`` here, or later);
* latency: 6 s live fragments transcribed one at a time, p50/p95;
* batching: ``transcribe_many`` over B fragments from different "streams" (one model call per
  batch), median of repeats, for B = 1 … 64: fragments per second and the batch's wall time.

From the batch times it derives the ASR stage's capacity in real-time streams (one 6 s fragment per
stream every 6 s): the largest B/T(B) x 6 whose batch time T(B) stays within the ASR latency budget.
That is a figure for the ASR stage only, derived from measured batch times, and labelled so.

    python -m bench.gpu_asr --model-dir DIR --config cuda:float16 --config cpu:int8:2 --out bench/results/gpu_asr.json

bench/gpu_device.sh runs it on a lent GPU machine (where the model and wheels are staged first).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

FRAGMENT_S = 6.0
RATE = 16_000
#: ASR's share of the 0.6 x 6 s processing budget, for the derived stream capacity.
ASR_BUDGETS_S = (1.0, 2.0)


def _import_engine(shim_av: bool) -> Any:
    if shim_av:
        try:
            import av  # noqa: F401
        except ImportError:
            # faster_whisper.audio imports PyAV for decode_audio(), which this benchmark never calls
            # (it passes arrays). The device image has no PyAV and nothing can be installed there.
            sys.modules["av"] = types.ModuleType("av")
    from livedub.runtime.engines.asr_whisper import WhisperRecognizer

    return WhisperRecognizer


# Clip loading, fragment cutting and percentiles are written here rather than taken from
# livedub.runtime.client (load_audio, split, percentile): that package imports python-socketio,
# which the GPU machine does not have and cannot install.


def _load_clips(data: Path) -> list[tuple[str, str, np.ndarray]]:
    import soundfile as sf

    clips = []
    for path in sorted(data.glob("fleurs-*.ogg")):
        audio, rate = sf.read(path, dtype="float32")
        assert rate == RATE, f"{path} is {rate} Hz"
        clips.append((path.stem, path.stem.split("-")[1], audio))
    return clips


def _fragments(clips: list[tuple[str, str, np.ndarray]]) -> list[tuple[np.ndarray, str]]:
    """Every clip cut into live-sized 6 s fragments (the last one kept if it is over 2 s)."""
    size = int(FRAGMENT_S * RATE)
    out = []
    for _, lang, audio in clips:
        for start in range(0, len(audio), size):
            piece = audio[start : start + size]
            if len(piece) >= 2 * RATE:
                out.append((piece, lang))
    return out


def _nvidia_smi(query: str, *, units: bool = True) -> str:
    """One ``nvidia-smi --query-gpu`` answer, or "" where there is no NVIDIA driver."""
    fmt = "csv,noheader" + ("" if units else ",nounits")
    try:
        return subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", f"--format={fmt}"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _gpu_memory_mib() -> float | None:
    text = _nvidia_smi("memory.used", units=False)
    return float(text.split()[0]) if text else None


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def measure(
    engine_cls: Any,
    model_dir: Path,
    device: str,
    compute: str,
    threads: int,
    clips: list[tuple[str, str, np.ndarray]],
    fragments: list[tuple[np.ndarray, str]],
    batches: list[int],
    repeats: int,
    latency_n: int,
    stream_levels: list[int],
    rounds: int,
    breakdown_sizes: Sequence[int] = (),
) -> dict[str, Any]:
    label = f"{device}:{compute}" + (f":{threads}t" if device == "cpu" else "")
    print(f"== {label}", flush=True)
    memory_before = _gpu_memory_mib()
    started = time.perf_counter()
    engine = engine_cls(
        model_path=model_dir, device=device, compute_type=compute, cpu_threads=threads, max_batch=max(batches)
    )
    load_s = time.perf_counter() - started
    # Warm-up: CUDA kernels, cuBLAS handles and allocator pools are created on the first calls.
    engine.transcribe_many([(a, lang, None) for a, lang in fragments[:4]])
    memory_loaded = _gpu_memory_mib()

    transcripts = {}
    clip_times = []
    for name, lang, audio in clips:
        t0 = time.perf_counter()
        transcripts[name] = engine.transcribe(audio, language=lang).text
        clip_times.append(time.perf_counter() - t0)
    print(f"   {len(clips)} clips transcribed, median {statistics.median(clip_times) * 1000:.0f} ms", flush=True)

    latencies = []
    for audio, lang in fragments[:latency_n]:
        t0 = time.perf_counter()
        engine.transcribe(audio, language=lang)
        latencies.append(time.perf_counter() - t0)
    print(
        f"   single fragment: p50 {_percentile(latencies, 50) * 1000:.0f} ms, "
        f"p95 {_percentile(latencies, 95) * 1000:.0f} ms",
        flush=True,
    )

    # What VAD costs per fragment (CPU, before the model), to separate it from the model's time.
    from faster_whisper.vad import get_speech_timestamps

    from livedub.runtime.engines.asr_whisper import VAD

    t0 = time.perf_counter()
    for audio, _ in fragments[:latency_n]:
        get_speech_timestamps(audio, VAD)
    vad_ms = (time.perf_counter() - t0) / max(1, min(latency_n, len(fragments))) * 1000

    sweep = []
    for size in batches:
        requests = [(fragments[i % len(fragments)][0], fragments[i % len(fragments)][1], None) for i in range(size)]
        calls_before = engine.model_calls
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            engine.transcribe_many(requests)
            times.append(time.perf_counter() - t0)
        batch_s = statistics.median(times)
        row = {
            "batch": size,
            "batch_s": round(batch_s, 4),
            "per_fragment_ms": round(batch_s / size * 1000, 2),
            "fragments_per_s": round(size / batch_s, 2),
            "model_calls_per_batch": (engine.model_calls - calls_before) / repeats,
            "gpu_memory_mib": _gpu_memory_mib(),
        }
        sweep.append(row)
        print(
            f"   batch {size:3d}: {batch_s * 1000:7.0f} ms  {row['fragments_per_s']:7.1f} fragments/s  "
            f"({row['model_calls_per_batch']:.0f} model call/batch)",
            flush=True,
        )
    paced = streams_sweep(engine, fragments, stream_levels, rounds) if stream_levels else []
    split = breakdown(engine, fragments, breakdown_sizes, repeats) if breakdown_sizes else []
    capacity = {}
    for budget in ASR_BUDGETS_S:
        fitting = [r for r in sweep if r["batch_s"] <= budget]
        best = max(fitting, key=lambda r: r["fragments_per_s"]) if fitting else None
        capacity[f"{budget:g}s"] = (
            {"streams": int(best["fragments_per_s"] * FRAGMENT_S), "batch": best["batch"]} if best else None
        )
    del engine
    return {
        "label": label,
        "device": device,
        "compute_type": compute,
        "cpu_threads": threads,
        "load_s": round(load_s, 2),
        "gpu_memory_mib": {"before_load": memory_before, "after_warmup": memory_loaded},
        "clip_ms_median": round(statistics.median(clip_times) * 1000, 1),
        "fragment_latency_ms": {
            "n": len(latencies),
            "p50": round(_percentile(latencies, 50) * 1000, 1),
            "p95": round(_percentile(latencies, 95) * 1000, 1),
            "max": round(max(latencies) * 1000, 1),
        },
        "vad_ms_per_fragment": round(vad_ms, 1),
        "batch_sweep": sweep,
        "asr_stream_capacity": capacity,
        "paced_streams": paced,
        "batch_breakdown": split,
        "transcripts": transcripts,
    }


def breakdown(engine: Any, fragments: list[tuple[np.ndarray, str]], sizes: Sequence[int], repeats: int) -> list[dict]:
    """Where a batch's time goes: VAD, log-mel (host threads), encode, generate (the model), medians.

    It walks the engine's own batched path step by step (its private helpers, on purpose: this is
    the split the engine does not expose), without language detection or prompts.
    """
    from livedub.runtime.engines.asr_whisper import MAX_LENGTH, _speech

    rows = []
    for size in sizes:
        audios = [fragments[i % len(fragments)] for i in range(size)]
        steps: dict[str, list[float]] = {"vad_s": [], "log_mel_s": [], "encode_s": [], "generate_s": []}
        for _ in range(repeats):
            t0 = time.perf_counter()
            prepared = engine._map(_speech, [a for a, _ in audios])
            t1 = time.perf_counter()
            kept = [
                (s[sp[0]["start"] : sp[-1]["end"]], lang)
                for (s, sp), (_, lang) in zip(prepared, audios, strict=True)
                if sp
            ]
            features = engine._features([crop for crop, _ in kept])
            t2 = time.perf_counter()
            encoded = engine.model.encode(features)
            t3 = time.perf_counter()
            engine.model.model.generate(
                encoded,
                [engine._prompt(lang, None) for _, lang in kept],
                beam_size=engine.beam_size,
                max_length=MAX_LENGTH,
                suppress_blank=True,
                suppress_tokens=engine._suppressed_tokens(),
            )
            t4 = time.perf_counter()
            for key, value in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                steps[key].append(value)
        row = {"batch": size, **{k: round(statistics.median(v), 4) for k, v in steps.items()}}
        rows.append(row)
        print(
            f"   batch {size:3d}: VAD {row['vad_s'] * 1000:6.0f} ms  log-mel {row['log_mel_s'] * 1000:6.0f} ms  "
            f"encode {row['encode_s'] * 1000:6.0f} ms  generate {row['generate_s'] * 1000:6.0f} ms",
            flush=True,
        )
    return rows


async def _paced_streams(engine: Any, fragments: list[tuple[np.ndarray, str]], streams: int, rounds: int) -> dict:
    """``streams`` live streams, each sending one fragment every 6 s from its own random phase,
    through the runtime's AsrBatcher (one batched call in flight, 20 ms window) on one worker thread."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from livedub.runtime.pipeline.batcher import AsrBatcher

    rng = np.random.default_rng(streams)
    sizes: list[int] = []
    latencies: list[float] = []
    with ThreadPoolExecutor(1) as executor:
        batcher = AsrBatcher(engine, executor, window_s=0.02, max_batch=engine.max_batch, on_call=sizes.append)

        async def stream(index: int) -> None:
            await asyncio.sleep(rng.uniform(0, FRAGMENT_S))
            for round_ in range(rounds):
                audio, lang = fragments[(index * rounds + round_) % len(fragments)]
                sent = time.perf_counter()
                await batcher.transcribe(audio, language=lang, prompt=None)
                latencies.append(time.perf_counter() - sent)
                await asyncio.sleep(max(0.0, FRAGMENT_S - (time.perf_counter() - sent)))

        started = time.perf_counter()
        await asyncio.gather(*(stream(i) for i in range(streams)))
        wall = time.perf_counter() - started
    return {
        "streams": streams,
        "fragments": len(latencies),
        "model_calls": len(sizes),
        "mean_batch": round(float(np.mean(sizes)), 2),
        "p50_ms": round(_percentile(latencies, 50) * 1000, 1),
        "p95_ms": round(_percentile(latencies, 95) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "wall_s": round(wall, 1),
    }


def streams_sweep(engine: Any, fragments: list[tuple[np.ndarray, str]], levels: list[int], rounds: int) -> list:
    """Raise the number of paced streams until ASR's p95 latency leaves the budget."""
    import asyncio

    rows = []
    for level in levels:
        row = asyncio.run(_paced_streams(engine, fragments, level, rounds))
        rows.append(row)
        print(
            f"   {level:4d} streams: p50 {row['p50_ms']:6.0f} ms  p95 {row['p95_ms']:6.0f} ms  "
            f"{row['fragments']} fragments in {row['model_calls']} calls (mean batch {row['mean_batch']})",
            flush=True,
        )
        if row["p95_ms"] > max(ASR_BUDGETS_S) * 1000:
            break
    return rows


def wer_by_language(data: Path, transcripts: dict[str, str]) -> dict[str, float]:
    """Pooled WER per language against the FLEURS references (same normalisation as bench.quality)."""
    import jiwer

    from bench.quality import _normalise as normalise

    out = {}
    for lang in sorted({name.split("-")[1] for name in transcripts}):
        names = [n for n in sorted(transcripts) if n.split("-")[1] == lang]
        refs = [normalise((data / f"{n}.txt").read_text()) for n in names]
        hyps = [normalise(transcripts[n]) for n in names]
        out[lang] = round(jiwer.wer(refs, hyps) * 100, 1)
    return out


def _environment() -> dict[str, Any]:
    import ctranslate2

    gpu = _nvidia_smi("name,driver_version,memory.total")
    cuda_types = sorted(ctranslate2.get_supported_compute_types("cuda")) if ctranslate2.get_cuda_device_count() else []
    return {
        "gpu": gpu or None,
        "cuda_devices": ctranslate2.get_cuda_device_count(),
        "cuda_compute_types": cuda_types,
        "ctranslate2": ctranslate2.__version__,
        "python": platform.python_version(),
        "cpu_cores": __import__("os").cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
    }


def readme_table(data: dict[str, Any]) -> str:
    """The README's GPU table, generated from a gpu_asr.json."""
    rows = [r for r in data["results"] if "batch_sweep" in r]
    env = data["environment"]

    def cell(row: dict[str, Any], key: str) -> str:
        lat = row["fragment_latency_ms"]
        best = max(row["batch_sweep"], key=lambda r: r["fragments_per_s"])
        if key == "latency":
            return f"{lat['p50']:.0f} / {lat['p95']:.0f} ms"
        if key == "throughput":
            return f"{best['fragments_per_s']:.0f} fragments/s (batch {best['batch']})"
        if key == "paced":
            paced = row.get("paced_streams") or []
            return "; ".join(f"{p['streams']}: {p['p95_ms'] / 1000:.2f} s" for p in paced) or "—"
        if key == "memory":
            used = row["gpu_memory_mib"]["after_warmup"]
            return f"{used:.0f} MiB" if row["device"] == "cuda" and used is not None else "—"
        wer = row.get("wer_percent") or {}
        return " / ".join(f"{wer[lang]}" for lang in ("en", "es", "fr", "de") if lang in wer) + " %" if wer else "—"

    lines = [
        f"Measured {env['date']} on {env['gpu'] or 'no GPU'} ({env['cpu_cores']} CPU cores), CTranslate2 "
        f"{env['ctranslate2']}. Generated by `python -m bench.gpu_asr --readme` from `bench/results/gpu_asr.json`.",
        "",
        "| Whisper base, 6 s FLEURS fragments | " + " | ".join(r["label"] for r in rows) + " |",
        "| --- |" + " --- |" * len(rows),
    ]
    for key, title in (
        ("latency", "one fragment alone, p50 / p95"),
        ("throughput", "batched throughput, best"),
        ("paced", "paced real-time streams: ASR p95"),
        ("memory", "GPU memory after warm-up"),
        ("wer", "FLEURS WER en / es / fr / de"),
    ):
        lines.append(f"| {title} | " + " | ".join(cell(r, key) for r in rows) + " |")
    return "\n".join(lines)


def _plot(out: Path) -> None:
    """bench/results/gpu_asr.png from this run, beside the serial-preprocessing run when it is there."""
    try:
        from bench import plots
    except ImportError:  # the GPU machine has no matplotlib backend set up for us: plot here later
        return
    runs = {"parallel prep": json.loads(out.read_text())}
    serial = out.with_name("gpu_asr_serial_prep.json")
    if serial.exists():
        runs = {"serial prep": json.loads(serial.read_text()), **runs}
    plots.gpu_asr(runs, out.with_suffix(".png"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, help="CTranslate2 Whisper model directory")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fleurs"))
    parser.add_argument(
        "--config", action="append", default=[], help="device:compute[:threads], e.g. cuda:float16, cpu:int8:2"
    )
    parser.add_argument("--batches", default="1,2,4,8,16,32,64")
    parser.add_argument("--cpu-batches", default="1,4,8")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--streams", default="", help="paced-stream levels through AsrBatcher, e.g. 16,64,128")
    parser.add_argument("--rounds", type=int, default=3, help="fragments per paced stream")
    parser.add_argument("--breakdown", default="", help="batch sizes to split into VAD/log-mel/encode/generate")
    parser.add_argument("--latency-n", type=int, default=30)
    parser.add_argument("--shim-av", action="store_true", help="the machine has no PyAV (never used here)")
    parser.add_argument("--wer", action="store_true", help="score transcripts (needs jiwer)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/gpu_asr.json"))
    parser.add_argument("--plot-only", action="store_true", help="redraw the PNG from --out")
    parser.add_argument("--readme", action="store_true", help="regenerate the README's GPU table from --out")
    args = parser.parse_args(argv)
    if args.plot_only:
        _plot(args.out)
        return 0
    if args.readme:
        from bench.run import update_readme

        update_readme(readme_table(json.loads(args.out.read_text())), "<!-- gpu:begin -->", "<!-- gpu:end -->")
        return 0

    engine_cls = _import_engine(args.shim_av)
    clips = _load_clips(args.data)
    fragments = _fragments(clips)
    print(f"{len(clips)} clips, {len(fragments)} fragments of <= {FRAGMENT_S:g} s", flush=True)
    env = _environment()
    print(json.dumps(env), flush=True)
    results = []
    paced_done = False
    for spec in args.config or ["cuda:float16"]:
        device, compute, *rest = spec.split(":")
        threads = int(rest[0]) if rest else 4
        batches = [int(b) for b in (args.batches if device == "cuda" else args.cpu_batches).split(",")]
        try:
            results.append(
                measure(
                    engine_cls,
                    args.model_dir,
                    device,
                    compute,
                    threads,
                    clips,
                    fragments,
                    batches,
                    args.repeats,
                    args.latency_n,
                    # Paced streams take ~20 s a level: the first CUDA configuration only.
                    [int(n) for n in args.streams.split(",") if n] if device == "cuda" and not paced_done else [],
                    args.rounds,
                    [int(n) for n in args.breakdown.split(",") if n],
                )
            )
            paced_done = paced_done or device == "cuda"
        except Exception as exc:  # one configuration failing must not lose the others' figures
            print(f"   FAILED: {exc!r}", flush=True)
            results.append({"label": spec, "error": repr(exc)})
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"environment": env, "results": results}, indent=2))
    if args.wer:
        for row in results:
            if "transcripts" in row:
                row["wer_percent"] = wer_by_language(args.data, row["transcripts"])
        args.out.write_text(json.dumps({"environment": env, "results": results}, indent=2))
    print(f"\n{'config':22} {'p50 ms':>7} {'p95 ms':>7} {'B=1 f/s':>8} {'best f/s':>9} {'streams@1s':>11}")
    for row in results:
        if "error" in row:
            print(f"{row['label']:22} ERROR {row['error'][:80]}")
            continue
        best = max(row["batch_sweep"], key=lambda r: r["fragments_per_s"])
        cap = row["asr_stream_capacity"]["1s"]
        print(
            f"{row['label']:22} {row['fragment_latency_ms']['p50']:7.0f} {row['fragment_latency_ms']['p95']:7.0f} "
            f"{row['batch_sweep'][0]['fragments_per_s']:8.1f} {best['fragments_per_s']:9.1f} "
            f"{(cap or {}).get('streams', 0):11d}"
        )
    print(f"wrote {args.out}")
    _plot(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
