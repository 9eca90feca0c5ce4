"""Quality: ASR WER (FLEURS en), MT BLEU/chrF (Tatoeba en→es), TTS intelligibility, duration fidelity."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import sacrebleu
from tqdm import tqdm

from livedub.runtime.client.dub import load_audio
from livedub.runtime.config import Settings
from livedub.runtime.engines.base import Engines

DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()
_normalise = jiwer.Compose(
    [jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip()]
)


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(_normalise(reference), _normalise(hypothesis) or "<empty>"))


def asr_wer(engines: Engines) -> dict[str, Any]:
    refs, hyps = [], []
    for path in tqdm(sorted((DATA / "fleurs").glob("fleurs-en-*.ogg")), desc="ASR WER", unit="clip"):
        refs.append(path.with_suffix(".txt").read_text().strip())
        hyps.append(engines.asr.transcribe(load_audio(path), language="en").text)
    return {
        "engine": engines.asr.name,
        "clips": len(refs),
        "wer": float(jiwer.wer([_normalise(r) for r in refs], [_normalise(h) for h in hyps])),
    }


def mt_scores(engines: Engines) -> list[dict[str, Any]]:
    pairs = [
        line.split("\t")[:2] for line in (DATA / "tatoeba" / "eng-spa.tsv").read_text().splitlines() if "\t" in line
    ]
    translators = [engines.translator]
    if os.environ.get("DEEPL_AUTH_KEY") and engines.translator.name != "deepl":
        from livedub.runtime.engines.mt_deepl import DeepLTranslator

        translators.append(DeepLTranslator(os.environ["DEEPL_AUTH_KEY"]))
    results = []
    for translator in translators:
        hyps = [
            translator.translate(en, source="en", target="es") for en, _ in tqdm(pairs, desc=f"MT {translator.name}")
        ]
        refs = [es for _, es in pairs]
        results.append(
            {
                "engine": translator.name,
                "sentences": len(pairs),
                "bleu": sacrebleu.corpus_bleu(hyps, [refs]).score,
                "chrf": sacrebleu.corpus_chrf(hyps, [refs]).score,
            }
        )
    return results


def intelligibility(engines: Engines, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """WER of a Spanish ASR pass over the dubbed audio against the text the TTS was asked to say."""
    refs, hyps = [], []
    for row in tqdm(
        [r for r in rows if r.get("translated_text") and r.get("_audio") is not None], desc="TTS intelligibility"
    ):
        refs.append(_normalise(row["translated_text"]))
        hyps.append(_normalise(engines.asr.transcribe(np.asarray(row["_audio"], dtype=np.float32), language="es").text))
    return {"engine": engines.tts.name, "fragments": len(refs), "wer": float(jiwer.wer(refs, hyps)) if refs else None}


def build_engines() -> Engines:
    from livedub.runtime.engines.factory import build_engines as factory

    return factory(Settings(_env_file=None))
