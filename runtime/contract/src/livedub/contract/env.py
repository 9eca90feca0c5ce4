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

# --- Placement (issue 12) -------------------------------------------------------------------------
#: Most live streams this pod serves; the next ``stream:init`` gets the retryable ``POD_FULL`` refusal
#: (with ``retry_after_ms``) and ``sts_accepting_streams`` turns 0.
MAX_POD_STREAMS: Final = "MAX_POD_STREAMS"
#: In-flight fragments across the pod's streams: the operator sizes it to a full pod's windows, so the
#: pod-wide limit never refuses a compliant worker before its own window does.
MAX_POD_INFLIGHT: Final = "MAX_POD_INFLIGHT"
#: The per-stream window the runtime advertises when ``MAX_INFLIGHT`` is not set (its Settings default).
DEFAULT_STREAM_INFLIGHT: Final = 3
#: The runtime's own pod-wide default, kept as the floor.
DEFAULT_POD_INFLIGHT: Final = 64
#: Seconds a refused worker waits before reconnecting (the refusal's ``retry_after_ms``, jittered by
#: the worker ±50 %): the operator needs it to turn refusals per second into streams waiting.
STREAM_RETRY_AFTER_S: Final = "STREAM_RETRY_AFTER_S"
#: A file (downward API volume of the pod's annotations) where the operator's
#: ``dubbing.livedub.io/draining`` mark appears: the runtime then stops admitting new streams and asks
#: its live streams to move at their next fragment boundary (gentle scale-down).
POD_ANNOTATIONS_FILE: Final = "POD_ANNOTATIONS_FILE"
#: The pod annotation that mark is (its value: when the operator set it). Written by the operator's
#: gentle scale-down (``livedub.operator.scaling.drain``), read by ``server/placement.py``.
DRAINING_ANNOTATION: Final = "dubbing.livedub.io/draining"
#: The pod annotation by which the operator asks an overloaded pod to shed live streams (rebalance
#: after a scale-up, ``livedub.operator.scaling.rebalance``). Its value starts with the number of
#: streams to move, then ``;``-separated details for the operator (``"9;from=60;at=<ISO time>"``); a
#: new value is a new request. Read through ``POD_ANNOTATIONS_FILE`` by ``server/shedding.py``.
SHED_STREAMS_ANNOTATION: Final = "dubbing.livedub.io/shed-streams"

#: Read by libraries inside the runtime rather than by its Settings.
LIBRARY: Final = frozenset({HF_HOME})

#: Every name the operator may set.
SET_BY_OPERATOR: Final = frozenset(
    {
        HOST, PORT, LOG_LEVEL, LOG_FORMAT, ASR_ENGINE, ASR_MODEL_SIZE, ASR_MODEL_PATH, ASR_DEVICE,
        ASR_COMPUTE_TYPE, MT_ENGINE, DEEPL_SERVER_URL, DEEPL_AUTH_KEY, TTS_CPU_THREADS, TTS_ENGINE,
        TTS_DEVICE, TTS_MODEL_PATH, VOICES_FILE, MAX_INFLIGHT, ARTIFACTS_ENABLED, DRAIN_TIMEOUT_S,
        AUTH_MODE, AUTH_TOKENS_FILE, HF_HOME, MAX_POD_STREAMS, STREAM_RETRY_AFTER_S, POD_ANNOTATIONS_FILE,
        MAX_POD_INFLIGHT,
    }
)  # fmt: skip
