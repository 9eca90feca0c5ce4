"""Environment variables the operator sets on runtime pods.

Each is a field of the runtime's ``Settings`` (upper-cased), except ``LIBRARY`` ones, which libraries
inside the runtime read (Hugging Face's cache location).
"""

from typing import Final

HOST: Final = "HOST"
PORT: Final = "PORT"
LOG_LEVEL: Final = "LOG_LEVEL"
LOG_FORMAT: Final = "LOG_FORMAT"
ASR_ENGINE: Final = "ASR_ENGINE"
ASR_MODEL_SIZE: Final = "ASR_MODEL_SIZE"
ASR_MODEL_PATH: Final = "ASR_MODEL_PATH"
ASR_DEVICE: Final = "ASR_DEVICE"
ASR_COMPUTE_TYPE: Final = "ASR_COMPUTE_TYPE"
MT_ENGINE: Final = "MT_ENGINE"
DEEPL_SERVER_URL: Final = "DEEPL_SERVER_URL"
DEEPL_AUTH_KEY: Final = "DEEPL_AUTH_KEY"
TTS_CPU_THREADS: Final = "TTS_CPU_THREADS"
TTS_ENGINE: Final = "TTS_ENGINE"
TTS_DEVICE: Final = "TTS_DEVICE"
TTS_MODEL_PATH: Final = "TTS_MODEL_PATH"
VOICES_FILE: Final = "VOICES_FILE"
MAX_INFLIGHT: Final = "MAX_INFLIGHT"
ARTIFACTS_ENABLED: Final = "ARTIFACTS_ENABLED"
DRAIN_TIMEOUT_S: Final = "DRAIN_TIMEOUT_S"
AUTH_MODE: Final = "AUTH_MODE"
AUTH_TOKENS_FILE: Final = "AUTH_TOKENS_FILE"
HF_HOME: Final = "HF_HOME"

#: Read by libraries inside the runtime rather than by its Settings.
LIBRARY: Final = frozenset({HF_HOME})

#: Every name the operator may set.
SET_BY_OPERATOR: Final = frozenset(
    {
        HOST, PORT, LOG_LEVEL, LOG_FORMAT, ASR_ENGINE, ASR_MODEL_SIZE, ASR_MODEL_PATH, ASR_DEVICE,
        ASR_COMPUTE_TYPE, MT_ENGINE, DEEPL_SERVER_URL, DEEPL_AUTH_KEY, TTS_CPU_THREADS, TTS_ENGINE,
        TTS_DEVICE, TTS_MODEL_PATH, VOICES_FILE, MAX_INFLIGHT, ARTIFACTS_ENABLED, DRAIN_TIMEOUT_S,
        AUTH_MODE, AUTH_TOKENS_FILE, HF_HOME,
    }
)  # fmt: skip
