"""MT side by side: Apertium vs the LLM translator (plain) vs the LLM with a duration budget.

    python bench/mt_llm.py [--limit N] [--fleurs N] [--threads N]

Tatoeba en→es (shared data): BLEU / chrF and milliseconds per sentence. The budget on Tatoeba has no
audio to come from, so each sentence gets the slot its English takes at ~15 characters a second and
the characters the default Spanish speaking rate fits in it (prefit.SpeakingRate's prior): about the
English length, where free Spanish runs ~15 % longer.

With ``--fleurs N``: N English FLEURS clips are transcribed (Whisper base), translated by each
translator (the budget from the clip's length and Kokoro's learned rate) and spoken by Kokoro at
speed 1.0; the tempo the stretch would need (voiced TTS seconds / clip seconds) is reported with the
share inside the natural band 0.85-1.2, and plotted to ``bench/results/mt_llm_tempo.png``.
Writes ``bench/results/mt_llm.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import sacrebleu

from livedub.runtime.engines.base import LengthBudget, TranslationOptions, Translator
from livedub.runtime.engines.mt_apertium import ApertiumTranslator
from livedub.runtime.engines.mt_llm import LlmTranslator
from livedub.runtime.pipeline.prefit import SpeakingRate

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "data").resolve()
RESULTS = ROOT / "bench" / "results"
ENGLISH_CHARS_PER_S = 15.0
NATURAL = (0.85, 1.2)


def tatoeba(translators: dict[str, tuple[Translator, bool]], limit: int) -> list[dict[str, Any]]:
    pairs = [
        line.split("\t")[:2] for line in (DATA / "tatoeba" / "eng-spa.tsv").read_text().splitlines() if "\t" in line
    ]
    pairs = pairs[:limit]
    rate = SpeakingRate()
    rows = []
    for label, (translator, with_budget) in translators.items():
        hyps, times = [], []
        for en, _ in pairs:
            budget = rate.budget("kokoro", "es", len(en) / ENGLISH_CHARS_PER_S) if with_budget else None
            started = time.perf_counter()
            hyps.append(translator.translate(en, source="en", target="es", options=TranslationOptions(budget=budget)))
            times.append((time.perf_counter() - started) * 1000)
        refs = [es for _, es in pairs]
        row = {
            "engine": label,
            "sentences": len(pairs),
            "bleu": round(sacrebleu.corpus_bleu(hyps, [refs]).score, 1),
            "chrf": round(sacrebleu.corpus_chrf(hyps, [refs]).score, 1),
            "ms_per_sentence_median": round(statistics.median(times)),
            "ms_per_sentence_p95": round(sorted(times)[int(0.95 * (len(times) - 1))]),
            "chars_ratio_to_reference": round(sum(map(len, hyps)) / sum(map(len, refs)), 3),
            "examples": [{"en": en, "ref": es, "hyp": h} for (en, es), h in list(zip(pairs, hyps, strict=True))[:5]],
        }
        print(json.dumps({k: v for k, v in row.items() if k != "examples"}), flush=True)
        rows.append(row)
    return rows


def fleurs_tempo(translators: dict[str, tuple[Translator, bool]], clips: int) -> dict[str, Any]:
    import numpy as np
    import soundfile as sf

    from livedub.runtime.audio.codec import resample
    from livedub.runtime.engines.asr_whisper import WhisperRecognizer
    from livedub.runtime.engines.tts_kokoro import KokoroSynthesizer
    from livedub.runtime.pipeline.duration import trim_silence

    asr, tts = WhisperRecognizer("embedded"), KokoroSynthesizer()
    names = sorted(p.stem for p in (DATA / "fleurs").glob("fleurs-en-*.ogg"))[:clips]
    rate = SpeakingRate()
    tempos: dict[str, list[float]] = {label: [] for label in translators}
    for name in names:
        audio, sr = sf.read(DATA / "fleurs" / f"{name}.ogg", dtype="float32")
        audio = audio.mean(axis=1) if audio.ndim > 1 else audio
        clip_s = len(trim_silence(audio, sr)) / sr or len(audio) / sr  # a quiet clip trims to nothing
        text = asr.transcribe(resample(audio, sr, 16_000).astype(np.float32), language="en").text
        for label, (translator, with_budget) in translators.items():
            budget: LengthBudget | None = rate.budget("kokoro", "es", clip_s) if with_budget else None
            out = translator.translate(text, source="en", target="es", options=TranslationOptions(budget=budget))
            speech = tts.synthesize(out, language="es", speed=1.0)
            voiced = len(trim_silence(speech.audio, speech.sample_rate)) / speech.sample_rate
            rate.observe("kokoro", "es", out, voiced, 1.0)
            tempos[label].append(voiced / clip_s)
            print(f"{name} {label}: tempo {voiced / clip_s:.2f} | {out}", flush=True)
    summary = {
        label: {
            "clips": len(values),
            "tempo_median": round(statistics.median(values), 3),
            "tempo_p10": round(float(np.percentile(values, 10)), 3),
            "tempo_p90": round(float(np.percentile(values, 90)), 3),
            "natural_share": round(sum(NATURAL[0] <= v <= NATURAL[1] for v in values) / len(values), 3),
            "tempos": [round(v, 3) for v in values],
        }
        for label, values in tempos.items()
    }
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.boxplot([tempos[label] for label in tempos], tick_labels=list(tempos))
        ax.axhspan(*NATURAL, alpha=0.15, color="green", label="natural 0.85-1.2")
        ax.set_ylabel("tempo needed (TTS s / clip s)")
        ax.set_title(f"en→es, {len(names)} FLEURS clips, Kokoro at speed 1.0")
        ax.legend()
        fig.tight_layout()
        fig.savefig(RESULTS / "mt_llm_tempo.png", dpi=110)
    except Exception as exc:  # the figures matter more than the picture: never lose them to a plot
        print(f"no plot: {exc!r}")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=100, help="Tatoeba lines (100 in the file)")
    parser.add_argument("--fleurs", type=int, default=0, help="English FLEURS clips for the tempo check")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp CPU threads")
    args = parser.parse_args()
    started = time.perf_counter()
    llm = LlmTranslator(cpu_threads=args.threads)
    load_s = time.perf_counter() - started
    translators: dict[str, tuple[Translator, bool]] = {
        "apertium": (ApertiumTranslator(), False),
        "llm": (llm, False),
        "llm+budget": (llm, True),
    }
    out = RESULTS / "mt_llm.json"
    # --limit 0 keeps the Tatoeba part of an earlier run and only adds the FLEURS part.
    result: dict[str, Any] = json.loads(out.read_text()) if args.limit == 0 and out.is_file() else {}
    result.update(model=str(llm.model_path.name), cpu_threads=args.threads, load_s=round(load_s, 1))
    if args.limit:
        result.update(tatoeba=tatoeba(translators, args.limit), budget_retries=llm.retry_total)
        RESULTS.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")  # kept if FLEURS fails
    if args.fleurs:
        result["fleurs_tempo"] = fleurs_tempo(translators, args.fleurs)
        print(json.dumps({k: {x: y for x, y in v.items() if x != "tempos"} for k, v in result["fleurs_tempo"].items()}))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
