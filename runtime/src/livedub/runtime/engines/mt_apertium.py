"""Embedded MT: Apertium, rule-based, from Debian packages (no weights, no network).

No neural MT ships in any registry package (NOTES.md), so the offline default is Apertium: literal
and sometimes wrong, but real translation. Modes are discovered from the installed pairs at
start-up (``/usr/share/apertium/modes`` and ``/usr/local/share/apertium/modes``); a pair with no
direct mode is chained through one pivot, Spanish first (en→es→fr), since every hop compounds a
rule-based system's errors. Context is ignored: Apertium translates sentence by sentence.

One subprocess per call and hop (measured here: 0.10-0.13 s a hop, mostly process start; en→fr
0.26 s). A long-lived pipe per mode would need every program of the mode's pipeline to run in
null-flush mode (``-z``) and a reader that never deadlocks on a partial answer; at ~2 % of the 5 s
stage budget that is not worth the fragility, so it is not done.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from livedub.runtime.engines.base import TranslationOptions, Translator, base_language
from livedub.runtime.engines.mt_glossary import Glossary
from livedub.runtime.errors import EngineError, ErrorCode

log = logging.getLogger(__name__)

#: Where Debian (and ``make install`` from source) put the pair modes.
MODES_DIRS = (Path("/usr/share/apertium/modes"), Path("/usr/local/share/apertium/modes"))
MODES_DIR = MODES_DIRS[0]
#: Apertium's language codes (ISO 639-3 in newer pairs, 639-1 in older ones) → ISO 639-1.
_ISO1 = {
    "eng": "en",
    "spa": "es",
    "cat": "ca",
    "fra": "fr",
    "fre": "fr",
    "por": "pt",
    "ita": "it",
    "deu": "de",
    "ger": "de",
    "glg": "gl",
    "oci": "oc",
    "eus": "eu",
    "ron": "ro",
    "nld": "nl",
    "en": "en",
    "es": "es",
    "ca": "ca",
    "fr": "fr",
    "pt": "pt",
    "it": "it",
    "gl": "gl",
    "oc": "oc",
    "eu": "eu",
    "ro": "ro",
    "nl": "nl",
    "de": "de",
}
#: Pivot languages to chain through, best first (Spanish has the most pairs in Debian).
PIVOTS = ("es", "en", "ca", "fr")


def discover_modes(modes_dirs: Path | tuple[Path, ...] = MODES_DIRS) -> dict[tuple[str, str], str]:
    """Installed direct pairs, as {(src, tgt): mode name}.

    Variant modes (``eng-cat_valencia``, ``spa-eng_US``) and non-translation modes
    (``eco-es-fr``, ``*-morph``) are skipped: their names are not exactly ``src-tgt``.
    """
    modes: dict[tuple[str, str], str] = {}
    if shutil.which("apertium") is None:
        return modes
    for directory in (modes_dirs,) if isinstance(modes_dirs, Path) else modes_dirs:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.mode")):
            name = path.stem
            parts = name.split("-")
            if len(parts) != 2 or "_" in name:
                continue
            source, target = (_ISO1.get(p) for p in parts)
            if source and target and source != target:
                modes.setdefault((source, target), name)
    return modes


def plan_routes(direct: dict[tuple[str, str], str]) -> dict[tuple[str, str], tuple[str, ...]]:
    """Direct modes, plus two-hop chains through the first pivot that connects a missing pair."""
    routes: dict[tuple[str, str], tuple[str, ...]] = {pair: (mode,) for pair, mode in direct.items()}
    languages = {lang for pair in direct for lang in pair}
    for source in sorted(languages):
        for target in sorted(languages):
            if source == target or (source, target) in routes:
                continue
            for pivot in PIVOTS:
                first, second = direct.get((source, pivot)), direct.get((pivot, target))
                if first and second:
                    routes[(source, target)] = (first, second)
                    break
    return routes


class ApertiumTranslator(Translator):
    name = "apertium"

    def __init__(self, *, timeout_s: float = 10.0, modes_dir: Path | tuple[Path, ...] = MODES_DIRS) -> None:
        self.timeout_s = timeout_s
        self._direct = discover_modes(modes_dir)
        self._routes = plan_routes(self._direct)
        if not self._routes:
            log.warning("no Apertium pairs installed: embedded translation offers no language pairs")

    def route(self, source: str, target: str) -> tuple[str, ...] | None:
        """The modes a translation runs through, or ``None`` if the pair is not offered."""
        return self._routes.get((base_language(source), base_language(target)))

    @property
    def pairs(self) -> frozenset[tuple[str, str]]:
        return frozenset(self._routes)

    def supports(self, source: str, target: str) -> bool:
        return (base_language(source), base_language(target)) in self._routes

    def translate(
        self,
        text: str,
        *,
        source: str,
        target: str,
        context: str | None = None,
        options: TranslationOptions | None = None,
    ) -> str:
        route = self.route(source, target)
        if route is None:
            raise EngineError(
                ErrorCode.UNSUPPORTED_LANGUAGE, f"no Apertium pair for {source}->{target}", retryable=False
            )
        if not text.strip():
            return ""
        if options is not None and options.glossary:
            # The stream's fixed terms go through as placeholders (mt_glossary.py); protect() calls
            # back here without the glossary.
            return Glossary(options.glossary).protect(self, text, source=source, target=target, options=options)
        for mode in route:
            text = self._run(mode, text)
        return text

    def _run(self, mode: str, text: str) -> str:
        try:
            # -u drops Apertium's unknown-word marks (*word): the TTS must not read them out.
            done = subprocess.run(
                ["apertium", "-u", mode],
                input=text,
                capture_output=True,
                encoding="utf-8",
                timeout=self.timeout_s,
                check=False,
                env={**os.environ, "LC_ALL": "C.UTF-8"},
            )
        except subprocess.TimeoutExpired as exc:
            raise EngineError(ErrorCode.TIMEOUT, f"apertium {mode} took over {self.timeout_s}s") from exc
        except OSError as exc:
            raise EngineError(ErrorCode.SERVICE_UNAVAILABLE, f"cannot run apertium: {exc}") from exc
        if done.returncode != 0:
            raise EngineError(
                ErrorCode.INTERNAL, f"apertium {mode} failed: {done.stderr.strip()[:200]}", retryable=False
            )
        # Apertium leaves doubled spaces where it dropped or moved words ("Por qué  no  tomamos").
        return "\n".join(" ".join(line.split()) for line in done.stdout.strip().splitlines())
