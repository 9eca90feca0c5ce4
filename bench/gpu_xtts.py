"""XTTS v2 with ``TTS_DEVICE=cuda``: does the runtime's XTTS engine really run on the GPU?

No XTTS weights can be had on these machines, so this builds the tiny XTTS of the tests
(tests/support/xtts_tiny.py: one-layer GPT, real HiFi-GAN decoder and speaker encoder, random weights)
and drives the production code with it. What it verifies, each as a PASS/FAIL row:

* ``TTS_ENGINE=xtts TTS_DEVICE=cuda TTS_MODEL_PATH=DIR`` read by ``Settings`` and built by the factory's
  ``build_tts`` gives an ``XTTSSynthesizer`` on ``cuda``: every parameter and buffer, and the built-in
  speakers' conditioning, on the GPU;
* conditioning latents computed on the GPU (every forward call of the model's modules returns GPU
  tensors while they are computed) and cached once per voice profile (hit/miss counters, LRU entries
  on the GPU, recomputed when the reference file changes);
* synthesis on the GPU (same forward-call check), output float32 mono at 24 kHz, finite both as the
  engine returns it and as the model wrote it (before the engine's ``nan_to_num``);
* the ``source`` voice: conditioning from in-memory audio (16 and 48 kHz), cached per stream, default
  voice until 1 s of speech, ``forget_source``;
* ``speed=2.0`` halves the samples of the same seeded generation (median over three seeds);
* concurrent calls from threads are serialised without errors.

It prints timings (import, load, latents, each synthesis call) and ``torch.cuda`` memory, then a table,
and exits 1 if any row failed. The tiny model's timings measure the code path (transfers, kernel
launches, synchronisation), not the real 1.8 GB model's speed, and its sound is noise.

    python -m bench.gpu_xtts --device cuda --out bench/results/gpu_xtts.json
    python -m bench.gpu_xtts --device cpu            # the same checks on CPU (dry run)

bench/gpu_xtts.sh runs it on a lent GPU machine from wheels that travel with the working tree.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))  # tests/support/xtts_tiny.py: the tests' tiny model

SENTENCE = ("es", "Hola a todos, esta es una prueba de la voz.")
SYNTH_CALLS = 5


class Report:
    """Checks (name, ok, detail), timings and memory readings, printed as a table and saved as JSON."""

    def __init__(self) -> None:
        self.checks: list[dict[str, Any]] = []
        self.timings: dict[str, Any] = {}
        self.memory: dict[str, Any] = {}
        self.info: dict[str, Any] = {}

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append({"name": name, "ok": bool(ok), "detail": detail})
        print(f"[{'PASS' if ok else 'FAIL'}] {name}{': ' + detail if detail else ''}", flush=True)
        return bool(ok)

    def attempt(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run one stage; an exception is a failed row with the error, and the stage's result is None."""
        try:
            return fn()
        except Exception as exc:
            tb = traceback.format_exc(limit=6)
            print(tb, file=sys.stderr, flush=True)
            self.check(name, False, f"{type(exc).__name__}: {exc}"[:400])
            return None

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c["ok"] for c in self.checks)

    def table(self) -> str:
        width = max(len(c["name"]) for c in self.checks) if self.checks else 10
        lines = ["", "=" * (width + 60), f"{'result':6}  {'check':{width}}  detail", "-" * (width + 60)]
        for c in self.checks:
            lines.append(f"{'PASS' if c['ok'] else 'FAIL':6}  {c['name']:{width}}  {c['detail'][:120]}")
        failed = sum(not c["ok"] for c in self.checks)
        lines.append("-" * (width + 60))
        verdict = "PASS" if self.passed else "FAIL"
        lines.append(f"OVERALL {verdict}: {len(self.checks) - failed} passed, {failed} failed")
        return "\n".join(lines)


class DeviceTrace:
    """Which devices the forward calls of ``model``'s own modules returned tensors on.

    Modules built on the fly outside the model (coqui computes the cloning mel spectrogram with a fresh
    torchaudio transform, on CPU by design) are counted apart, as information.
    """

    def __init__(self, torch: Any, model: Any) -> None:
        self._torch = torch
        self._ids = {id(m) for m in model.modules()}
        self.model_calls: Counter[str] = Counter()
        self.other_calls: Counter[str] = Counter()
        self.off_device: Counter[str] = Counter()

    def _devices(self, value: Any, depth: int = 0) -> Iterator[str]:
        if isinstance(value, self._torch.Tensor):
            yield value.device.type
        elif depth < 3 and isinstance(value, dict):
            for item in value.values():
                yield from self._devices(item, depth + 1)
        elif depth < 3 and isinstance(value, (list, tuple)):
            for item in value:
                yield from self._devices(item, depth + 1)

    @contextmanager
    def watch(self, device_type: str) -> Iterator[DeviceTrace]:
        def hook(module: Any, _args: Any, output: Any) -> None:
            devices = set(self._devices(output))
            name = type(module).__name__
            if id(module) in self._ids:
                for dev in devices:
                    self.model_calls[dev] += 1
                if devices - {device_type}:
                    self.off_device[name] += 1
            else:
                for dev in devices:
                    self.other_calls[f"{name}@{dev}"] += 1

        handle = self._torch.nn.modules.module.register_module_forward_hook(hook)
        try:
            yield self
        finally:
            handle.remove()

    def summary(self) -> str:
        text = f"model module outputs by device {dict(self.model_calls)}"
        if self.off_device:
            text += f"; off-device {dict(self.off_device)}"
        if self.other_calls:
            text += f"; other modules {dict(self.other_calls)}"
        return text


def _version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _speech_ok(report: Report, name: str, speech: Any, rate: int = 24_000) -> bool:
    audio = speech.audio
    ok = (
        speech.sample_rate == rate
        and isinstance(audio, np.ndarray)
        and audio.dtype == np.float32
        and audio.ndim == 1
        and len(audio) > 0
        and bool(np.isfinite(audio).all())
        and float(np.abs(audio).max()) <= 1.0
    )
    detail = (
        f"{speech.sample_rate} Hz, {audio.dtype}, shape {audio.shape}, "
        f"{len(audio) / speech.sample_rate:.2f} s, finite={bool(np.isfinite(audio).all())}"
    )
    return report.check(name, ok, detail)


def run(args: argparse.Namespace, report: Report) -> None:
    started = time.perf_counter()
    import torch

    cuda = args.device.startswith("cuda")
    want = "cuda" if cuda else "cpu"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def memory(stage: str) -> None:
        if not cuda:
            return
        free, total = torch.cuda.mem_get_info()
        reading = {
            "allocated_mb": round(torch.cuda.memory_allocated() / 2**20, 1),
            "max_allocated_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1),
            "reserved_mb": round(torch.cuda.memory_reserved() / 2**20, 1),
            "device_used_mb": round((total - free) / 2**20, 1),
        }
        report.memory[stage] = reading
        print(f"  torch.cuda memory after {stage}: {reading}", flush=True)

    report.info.update(
        python=platform.python_version(),
        torch=torch.__version__,
        torch_cuda=torch.version.cuda,
        cuda_available=torch.cuda.is_available(),
        device=args.device,
        gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        **{pkg: _version(pkg) for pkg in ("torchaudio", "transformers", "coqui-tts", "numpy", "pydantic")},
    )
    print("environment:", json.dumps(report.info), flush=True)
    if cuda and not report.check("CUDA device visible to torch", torch.cuda.is_available(), str(report.info["gpu"])):
        return

    t0 = time.perf_counter()
    tts_import = report.attempt("import coqui-tts XTTS", lambda: __import__("TTS.tts.models.xtts"))
    report.timings["import_tts_s"] = round(time.perf_counter() - t0, 3)
    if tts_import is None:
        return

    from support.xtts_tiny import SPEAKERS, build_tiny_xtts, speechlike

    workdir = Path(tempfile.mkdtemp(prefix="gpu_xtts_"))
    model_dir = Path(args.model_dir) if args.model_dir else workdir / "model"
    if not args.model_dir:
        t0 = time.perf_counter()
        if report.attempt("build the tiny XTTS (CPU)", lambda: build_tiny_xtts(model_dir)) is None:
            return
        report.timings["build_tiny_model_s"] = round(time.perf_counter() - t0, 3)

    # --- load through configuration, as the server does ------------------------------------------------
    os.environ.update(TTS_ENGINE="xtts", TTS_DEVICE=args.device, TTS_MODEL_PATH=str(model_dir))

    def load() -> Any:
        from livedub.runtime.config import Settings
        from livedub.runtime.engines.factory import build_tts

        settings = Settings()
        t0 = time.perf_counter()
        engine = build_tts(settings)
        sync()
        report.timings["load_s"] = round(time.perf_counter() - t0, 3)
        return settings, engine

    loaded = report.attempt("load via Settings + build_tts", load)
    if loaded is None:
        return
    settings, engine = loaded
    from livedub.runtime.engines.base import VoiceProfile
    from livedub.runtime.engines.tts_xtts import XTTSSynthesizer
    from livedub.runtime.engines.voices import SOURCE_VOICE, SourceAudioBuffer, SourceReference

    model = engine._model
    placements = Counter(t.device.type for t in [*model.parameters(), *model.buffers()])
    report.check(
        f"TTS_DEVICE={args.device} -> XTTS engine on {want}",
        isinstance(engine, XTTSSynthesizer) and settings.tts_device == args.device and engine.device == args.device,
        f"{type(engine).__name__}, settings.tts_device={settings.tts_device}, engine.device={engine.device}, "
        f"load {report.timings['load_s']} s",
    )
    report.check(
        f"all parameters and buffers on {want}",
        set(placements) == {want},
        f"{dict(placements)} tensors, {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters",
    )
    builtin_devices = {
        t.device.type for c in engine._speakers.values() for t in (c.gpt_cond_latent, c.speaker_embedding)
    }
    report.check(
        f"built-in speakers' conditioning on {want}",
        builtin_devices == {want} and engine.speakers == list(SPEAKERS),
        f"{engine.speakers} on {sorted(builtin_devices)}",
    )
    memory("load")
    trace = DeviceTrace(torch, model)

    # --- default voice: first call (kernel warm-up), format, raw model output --------------------------
    def first_call() -> None:
        t0 = time.perf_counter()
        speech = engine.synthesize(SENTENCE[1], language=SENTENCE[0])
        sync()
        report.timings["first_synth_s"] = round(time.perf_counter() - t0, 3)
        _speech_ok(report, "default voice: float32 mono 24 kHz, finite, |x|<=1", speech)

    report.attempt("default voice synthesis", first_call)

    def raw_output() -> None:
        cond = engine._default
        with engine._lock, torch.inference_mode():
            out = model.inference(
                SENTENCE[1],
                SENTENCE[0],
                cond.gpt_cond_latent,
                cond.speaker_embedding,
                enable_text_splitting=False,
                **engine.inference_options,
            )
        wav = np.asarray(out["wav"], dtype=np.float32)
        report.check(
            "model's raw output finite (before the engine's nan_to_num)",
            wav.size > 0 and bool(np.isfinite(wav).all()),
            f"{wav.size} samples, max |x| {float(np.nanmax(np.abs(wav))) if wav.size else 0:.3f}",
        )

    report.attempt("model's raw output", raw_output)

    # --- conditioning latents: on the device, timed, cached per profile --------------------------------
    import soundfile as sf

    def latents() -> None:
        audio = speechlike(6.0, 16_000, f0=180)
        times = []
        with trace.watch(want):
            for _ in range(args.latent_repeats):
                t0 = time.perf_counter()
                with engine._lock:
                    cond = engine._condition(audio, 16_000)
                sync()
                times.append(time.perf_counter() - t0)
        report.timings["latents_s"] = [round(t, 4) for t in times]
        shapes = (
            f"gpt_cond_latent {tuple(cond.gpt_cond_latent.shape)}, "
            f"speaker_embedding {tuple(cond.speaker_embedding.shape)}"
        )
        report.check(
            f"latents computed on {want} (6 s reference)",
            cond.gpt_cond_latent.device.type == want
            and cond.speaker_embedding.device.type == want
            and trace.model_calls[want] > 0
            and not trace.off_device,
            f"{shapes}; {trace.summary()}; first {times[0] * 1000:.1f} ms, "
            f"median {statistics.median(times) * 1000:.1f} ms",
        )

    report.attempt("latents on the device", latents)
    memory("latents")

    def profiles() -> None:
        refs = []
        for index in range(2):
            path = workdir / f"ref{index}.wav"
            sf.write(path, speechlike(4.0, 16_000, f0=150 + 50 * index, seed=index), 16_000, subtype="PCM_16")
            refs.append(VoiceProfile(name=f"anchor{index}", language="es", reference_audio=path))
        before = engine.cache_info()
        calls = []
        for voice in (refs[0], refs[0], refs[1], refs[1]):
            t0 = time.perf_counter()
            speech = engine.synthesize("Buenas noches.", language="es", voice=voice)
            sync()
            calls.append(round(time.perf_counter() - t0, 4))
        after = engine.cache_info()
        report.timings["profile_synth_s(miss,hit,miss,hit)"] = calls
        _speech_ok(report, "profile voice: float32 mono 24 kHz, finite", speech)
        cached_devices = {
            t.device.type for c in engine._cache.values() for t in (c.gpt_cond_latent, c.speaker_embedding)
        }
        report.check(
            "latents cached once per profile, cache on the device",
            after["misses"] - before["misses"] == 2
            and after["hits"] - before["hits"] == 2
            and after["profiles"] == 2
            and cached_devices == {want},
            f"{before} -> {after}, cached on {sorted(cached_devices)}, call s (miss,hit,miss,hit) {calls}",
        )
        path = refs[0].reference_audio
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
        engine.synthesize("Otra vez.", language="es", voice=refs[0])
        final = engine.cache_info()
        report.check(
            "changed reference file recomputes its latents",
            final["misses"] == after["misses"] + 1 and final["profiles"] == 2,
            f"{after} -> {final}",
        )

    report.attempt("profile latents cache", profiles)

    # --- the source voice --------------------------------------------------------------------------------
    def source() -> None:
        engine.source_refresh_s = 3600
        buffer = SourceAudioBuffer("gpu-stream", 16_000, max_seconds=8)
        buffer.append(speechlike(0.5, 16_000))
        start = engine.cache_info()
        engine.synthesize("hola", language="es", voice=SOURCE_VOICE, reference=buffer.reference())
        short = engine.cache_info()
        buffer.append(speechlike(2.5, 16_000, seed=3))
        t0 = time.perf_counter()
        speech = engine.synthesize("hola", language="es", voice=SOURCE_VOICE, reference=buffer.reference())
        sync()
        miss_s = time.perf_counter() - t0
        cloned = engine.cache_info()
        buffer.append(speechlike(1.0, 16_000, seed=4))
        t0 = time.perf_counter()
        engine.synthesize("otra vez", language="es", voice=SOURCE_VOICE, reference=buffer.reference())
        sync()
        hit_s = time.perf_counter() - t0
        reused = engine.cache_info()
        report.timings["source_synth_s(miss,hit)"] = [round(miss_s, 4), round(hit_s, 4)]
        _speech_ok(report, "source voice: float32 mono 24 kHz, finite", speech)
        state = engine._sources["gpu-stream"].conditioning
        on = {state.gpt_cond_latent.device.type, state.speaker_embedding.device.type}
        report.check(
            f"source voice: latents from live audio on {want}, cached per stream",
            short["misses"] == start["misses"]
            and cloned["misses"] == start["misses"] + 1
            and cloned["sources"] == 1
            and reused["misses"] == cloned["misses"]
            and reused["hits"] == cloned["hits"] + 1
            and on == {want},
            f"<1 s: {short}; 3 s: {cloned}; refreshed within interval: {reused}; on {sorted(on)}",
        )
        at48 = SourceReference("gpu-stream-48k", speechlike(2.0, 48_000), 48_000, version=1)
        _speech_ok(
            report,
            "source voice from 48 kHz audio",
            engine.synthesize("hello", language="en", voice=SOURCE_VOICE, reference=at48),
        )
        engine.forget_source("gpu-stream")
        engine.forget_source("gpu-stream-48k")
        report.check("forget_source drops the streams", engine.cache_info()["sources"] == 0, str(engine.cache_info()))

    report.attempt("source voice", source)

    # --- synthesis on the device, timed --------------------------------------------------------------------
    def synthesis() -> None:
        trace.model_calls.clear()
        trace.off_device.clear()
        trace.other_calls.clear()
        times, seconds = [], []
        with trace.watch(want):
            for _ in range(args.synth_calls):
                t0 = time.perf_counter()
                speech = engine.synthesize(SENTENCE[1], language=SENTENCE[0])
                sync()
                times.append(time.perf_counter() - t0)
                seconds.append(len(speech.audio) / speech.sample_rate)
        report.timings["synth_s"] = [round(t, 4) for t in times]
        report.timings["synth_audio_s"] = [round(s, 3) for s in seconds]
        report.timings["synth_rtf"] = [round(t / s, 4) if s else None for t, s in zip(times, seconds, strict=True)]
        report.check(
            f"synthesis ran on {want}",
            trace.model_calls[want] > 0 and not trace.off_device,
            f"{args.synth_calls} calls; {trace.summary()}",
        )
        print(
            f"  synth per call (s): {report.timings['synth_s']}  audio (s): {report.timings['synth_audio_s']}",
            flush=True,
        )

    report.attempt("synthesis on the device", synthesis)
    memory("synthesis")

    # --- speed -----------------------------------------------------------------------------------------------
    def speed() -> None:
        ratios, lengths = [], {}
        for seed in (7, 11, 13):
            got = {}
            for value in (1.0, 2.0):
                torch.manual_seed(seed)  # same sampled GPT codes: only the speed interpolation differs
                got[value] = len(engine.synthesize("Bonjour tout le monde", language="fr", speed=value).audio)
            lengths[seed] = got
            ratios.append(got[2.0] / got[1.0] if got[1.0] else float("nan"))
        median = statistics.median(ratios)
        report.check(
            "speed=2.0 halves the same seeded generation",
            0.45 <= median <= 0.55,
            f"samples by seed {{seed: {{speed: n}}}} {lengths}; median ratio {median:.3f}",
        )

    report.attempt("speed", speed)

    # --- threads ----------------------------------------------------------------------------------------------
    def threads() -> None:
        from support.concurrency import run_in_threads

        lengths, errors = run_in_threads(
            lambda index: len(engine.synthesize(f"frase {index}", language="es").audio), 4, timeout_s=120
        )
        report.check(
            "4 concurrent calls serialised, no error",
            not errors and len(lengths) == 4 and all(n > 0 for n in lengths),
            f"lengths {lengths}, errors {[repr(e) for e in errors]}",
        )

    report.attempt("concurrent calls", threads)
    memory("end")
    report.timings["total_s"] = round(time.perf_counter() - started, 2)
    # torchcodec travels only for coqui-tts's presence check; nothing on this path should import it.
    report.info["torchcodec_imported"] = "torchcodec" in sys.modules


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=os.environ.get("TTS_DEVICE", "cuda"), help="cuda, cuda:N or cpu")
    parser.add_argument("--model-dir", help="an XTTS directory to load instead of building the tiny model")
    parser.add_argument("--synth-calls", type=int, default=SYNTH_CALLS)
    parser.add_argument("--latent-repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    args = parser.parse_args(argv)
    report = Report()
    report.attempt("the check itself", lambda: run(args, report))
    print(report.table(), flush=True)
    print("timings (s):", json.dumps(report.timings), flush=True)
    if report.memory:
        print("torch.cuda memory (MiB):", json.dumps(report.memory), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "passed": report.passed,
            "info": report.info,
            "timings": report.timings,
            "memory": report.memory,
            "checks": report.checks,
        }
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}", flush=True)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
