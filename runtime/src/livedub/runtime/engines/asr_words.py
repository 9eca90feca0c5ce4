"""Word timestamps for the batched Whisper path, from the encoder output the batch already computed.

faster-whisper gives words only through ``WhisperModel.transcribe`` (one request at a time, its own
encode) or ``BatchedInferencePipeline`` (1.2.1 has ``word_timestamps``, but it batches the chunks of
ONE file with one tokenizer, so it cannot serve several streams in several languages). Here the
runtime's own batched call keeps its single ``encode`` and aligns only the windows whose stream asked
for words (captions): CTranslate2's ``align`` runs one decoder pass with cross-attention over the
tokens already decoded (faster-whisper's ``find_alignment``, the same DTW over alignment heads its
``transcribe`` uses). Requests without words cost nothing extra, alone or batched with ones that ask.

``align`` takes one start sequence (it holds the language token), so windows are aligned per
language. When only part of a batch asks, the encoder output is cut to those rows: on the CPU a
NumPy view, on a GPU through host memory (a few MB for a batch of 6 s windows).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import merge_punctuations

from livedub.runtime.engines.base import Word

#: faster-whisper's own defaults for ``transcribe``: punctuation glued to the word it belongs to.
_DEFAULTS = inspect.signature(WhisperModel.transcribe).parameters
PREPEND: str = _DEFAULTS["prepend_punctuations"].default
APPEND: str = _DEFAULTS["append_punctuations"].default
#: Mel frames per second of audio (hop length 160 at 16 kHz).
FRAMES_PER_S = 100


def rows(encoded: ctranslate2.StorageView, picked: Sequence[int], total: int) -> ctranslate2.StorageView:
    """The encoder output of the ``picked`` batch rows (the whole output when all are picked)."""
    if len(picked) == total:
        return encoded
    on_gpu = encoded.device != "cpu"
    host = encoded.to_device(ctranslate2.Device.cpu) if on_gpu else encoded
    part = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.asarray(host)[list(picked)]))
    return part.to_device(ctranslate2.Device.cuda) if on_gpu else part


def align(
    model: WhisperModel,
    tokenizer: Tokenizer,
    encoded: ctranslate2.StorageView,
    batch: int,
    picked: list[int],
    tokens: list[list[int]],
    durations_s: list[float],
    offsets_s: list[float],
) -> list[tuple[Word, ...]]:
    """Words of the ``picked`` rows of ``encoded`` (a batch of ``batch`` rows; one language), in
    seconds of the fragment; ``tokens``, ``durations_s`` and ``offsets_s`` go with ``picked``.

    ``durations_s`` is each window's audio (padding excluded: the alignment must not run into it),
    ``offsets_s`` where the window starts in the fragment (the VAD crop).
    """
    frames = [max(1, round(d * FRAMES_PER_S)) for d in durations_s]
    # ``find_alignment`` returns [] for an empty token list; ``align`` itself would reject the batch.
    keep = [i for i, t in enumerate(tokens) if t]
    result: list[tuple[Word, ...]] = [()] * len(tokens)
    if not keep:
        return result
    encoded = rows(encoded, [picked[i] for i in keep], batch)
    aligned = model.find_alignment(tokenizer, [tokens[i] for i in keep], encoded, [frames[i] for i in keep])
    for i, words in zip(keep, aligned, strict=True):
        merge_punctuations(words, PREPEND, APPEND)
        end_s = durations_s[i]
        result[i] = tuple(
            Word(
                w["word"].strip(),
                round(offsets_s[i] + min(float(w["start"]), end_s), 3),
                round(offsets_s[i] + min(max(float(w["end"]), float(w["start"])), end_s), 3),
                float(w["probability"]),
            )
            for w in words
            if w["word"].strip()
        )
    return result
