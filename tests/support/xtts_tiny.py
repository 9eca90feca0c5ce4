"""A tiny XTTS v2 built from config, for tests and device checks where the real weights cannot be had.

``build_tiny_xtts(DIR)`` writes a directory that coqui's ``Xtts.load_checkpoint`` loads like the real
mounted model (``config.json``, ``model.pth``, ``vocab.json``, ``speakers_xtts.pth``): an ``XttsConfig``
with a one-layer, 32-wide GPT, the real HiFi-GAN decoder and speaker encoder, random weights, a
character-level vocabulary made with ``tokenizers`` and two built-in speakers conditioned on synthetic
audio. Its output is noise: it exercises the code path, not the sound.

Used by tests/unit/engines/test_tts_xtts.py and bench/gpu_xtts.py. Needs numpy; ``build_tiny_xtts``
also torch, coqui-tts and tokenizers (imported inside it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TINY_LANGUAGES = ("en", "es", "fr", "de", "zh-cn")
SPEAKERS = ("Tiny Speaker A", "Tiny Speaker B")


def speechlike(seconds: float, rate: int, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """A voiced-sounding signal: harmonics with vibrato and syllable-rate amplitude, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = f0 * (1 + 0.05 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.2 * voiced * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _write_vocab(path: Path) -> None:
    from tokenizers import Tokenizer, models

    # XTTS looks these up by name ([START]/[STOP]) and inserts [SPACE] and a [lang] tag itself.
    special = ["[STOP]", "[UNK]", "[SPACE]", "[START]", *(f"[{lang}]" for lang in TINY_LANGUAGES)]
    letters = list("abcdefghijklmnopqrstuvwxyz0123456789áéíóúñüàèìòùçâêîôûëïœäöß.,!?¡¿'-;:\"")
    vocab = {token: index for index, token in enumerate(special + letters)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tokenizer.add_special_tokens(special)
    tokenizer.save(str(path))


def build_tiny_xtts(target: Path) -> Path:
    """Write a loadable XTTS v2 directory with random weights (~90 MB, ~3 s on 2 CPU cores)."""
    import torch
    from TTS.tts.configs.xtts_config import XttsArgs, XttsConfig
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer
    from TTS.tts.models.xtts import Xtts

    torch.manual_seed(1234)
    target.mkdir(parents=True, exist_ok=True)
    _write_vocab(target / "vocab.json")
    args = XttsArgs(
        gpt_layers=1,
        gpt_n_model_channels=32,
        gpt_n_heads=2,
        # 24 audio tokens at most: with random weights the GPT rarely stops by itself, so this bounds
        # every generation to ~1 s of audio and the whole module to seconds.
        gpt_max_audio_tokens=24,
        gpt_max_text_tokens=402,
        gpt_max_prompt_tokens=8,
        gpt_num_audio_tokens=34,
        gpt_start_audio_token=32,
        gpt_stop_audio_token=33,
        gpt_use_perceiver_resampler=True,  # as in XTTS v2
        decoder_input_dim=32,  # the decoder reads GPT latents
    )
    config = XttsConfig(model_args=args, languages=list(TINY_LANGUAGES), gpt_cond_len=6, gpt_cond_chunk_len=3)
    model = Xtts(config)
    model.tokenizer = VoiceBpeTokenizer(vocab_file=str(target / "vocab.json"))
    model.init_models()  # builds the GPT now that the vocabulary size is known
    model.eval()
    torch.save({"model": model.state_dict()}, target / "model.pth")
    config.save_json(str(target / "config.json"))
    speakers = {}
    for seed, name in enumerate(SPEAKERS):
        wav = torch.from_numpy(speechlike(4.0, 22050, f0=110 + 60 * seed, seed=seed)).unsqueeze(0)
        speakers[name] = {
            "gpt_cond_latent": model.get_gpt_cond_latents(wav, 22050, length=6, chunk_length=3),
            "speaker_embedding": model.get_speaker_embedding(wav, 22050),
        }
    torch.save(speakers, target / "speakers_xtts.pth")
    return target
