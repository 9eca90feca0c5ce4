"""Embedded MT: Apertium, rule-based, from Debian packages (no weights, no network).

No neural MT ships in any registry package (NOTES.md), so the offline default is Apertium: literal
and sometimes wrong, but real translation, ~0.2 s a call. Modes are discovered from the installed
pairs at start-up; a pair with no direct mode is chained through Spanish (en→es→fr). Context is
ignored: Apertium translates sentence by sentence.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from livedub.runtime.engines.base import TranslationOptions, Translator
from livedub.runtime.errors import EngineError, ErrorCode

MODES_DIR = Path("/usr/share/apertium/modes")
#: Apertium's language codes (ISO 639-3 in newer pairs, 639-1 in older ones) → ISO 639-1.
_ISO1 = {"eng": "en", "spa": "es", "cat": "ca", "fra": "fr", "por": "pt", "ita": "it", "deu": "de", "glg": "gl",
         "en": "en", "es": "es", "ca": "ca", "fr": "fr", "pt": "pt", "it": "it", "gl": "gl"}
_PIVOT = "es"


def discover_modes(modes_dir: Path = MODES_DIR) -> dict[tuple[str, str], str]:
    """Installed direct pairs, as {(src, tgt): mode name}. Variant modes (``eng-cat_valencia``) are skipped."""
    modes: dict[tuple[str, str], str] = {}
    if shutil.which("apertium") is None or not modes_dir.is_dir():
        return modes
    for path in sorted(modes_dir.glob("*.mode")):
        name = path.stem
        parts = name.split("-")
        if len(parts) != 2 or "_" in name:
            continue
        source, target = (_ISO1.get(p) for p in parts)
        if source and target:
            modes.setdefault((source, target), name)
    return modes


class ApertiumTranslator(Translator):
    name = "apertium"

    def __init__(self, *, timeout_s: float = 10.0, modes_dir: Path = MODES_DIR) -> None:
        self.timeout_s = timeout_s
        self._direct = discover_modes(modes_dir)
        routes: dict[tuple[str, str], tuple[str, ...]] = {pair: (mode,) for pair, mode in self._direct.items()}
        for (source, middle), first in self._direct.items():
            if middle != _PIVOT:
                continue
            for (pivot, target), second in self._direct.items():
                if pivot == _PIVOT and target != source and (source, target) not in routes:
                    routes[(source, target)] = (first, second)
        self._routes = routes

    @property
    def pairs(self) -> frozenset[tuple[str, str]]:
        return frozenset(self._routes)

    def supports(self, source: str, target: str) -> bool:
        return (_base(source), _base(target)) in self._routes

    def translate(
        self, text: str, *, source: str, target: str, context: str | None = None, options: TranslationOptions | None = None
    ) -> str:
        route = self._routes.get((_base(source), _base(target)))
        if route is None:
            raise EngineError(ErrorCode.UNSUPPORTED_LANGUAGE, f"no Apertium pair for {source}->{target}", retryable=False)
        for mode in route:
            text = self._run(mode, text)
        return text

    def _run(self, mode: str, text: str) -> str:
        try:
            # -u drops Apertium's unknown-word marks (*word): the TTS must not read them out.
            done = subprocess.run(
                ["apertium", "-u", mode], input=text, capture_output=True, text=True, timeout=self.timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise EngineError(ErrorCode.TIMEOUT, f"apertium {mode} took over {self.timeout_s}s") from exc
        except OSError as exc:
            raise EngineError(ErrorCode.SERVICE_UNAVAILABLE, f"cannot run apertium: {exc}") from exc
        if done.returncode != 0:
            raise EngineError(ErrorCode.INTERNAL, f"apertium {mode} failed: {done.stderr.strip()[:200]}", retryable=False)
        return done.stdout.strip()


def _base(code: str) -> str:
    return code.split("-")[0].lower()
