"""Prometheus metrics: the guide's names exactly, then queue depth, backpressure and more.

One ``Metrics`` object per app with its own registry (tests run several apps in one process).
Labels come from closed sets only (stage, code, status, severity): never a stream or fragment id,
so cardinality stays bounded and ``/metrics`` exposes no stream content.
The names the operator's autoscaler reads come from ``livedub.contract.metrics``, which both sides import.
"""

from __future__ import annotations

import contextlib
import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector, generate_latest

from livedub.contract import metrics as contract
from livedub.runtime.errors import DubbingError, Stage

log = logging.getLogger(__name__)

#: Seconds: fragments are ~6 s, so buckets resolve the 0.1-30 s range where targets live.
_STAGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0)
_FRAGMENT_BUCKETS = (0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # --- the guide's metrics ---
        self.fragment_seconds = Histogram(
            "sts_fragment_processing_seconds",
            "Fragment processing time, receipt to result.",
            buckets=_FRAGMENT_BUCKETS,
            registry=r,
        )
        self.asr_seconds = Histogram(
            "sts_asr_duration_seconds", "ASR stage latency.", buckets=_STAGE_BUCKETS, registry=r
        )
        self.translation_seconds = Histogram(
            "sts_translation_duration_seconds", "Translation stage latency.", buckets=_STAGE_BUCKETS, registry=r
        )
        self.tts_seconds = Histogram(
            "sts_tts_duration_seconds", "TTS stage latency.", buckets=_STAGE_BUCKETS, registry=r
        )
        self.inflight = Gauge(contract.IN_FLIGHT, "Fragments being processed in this process.", registry=r)
        self.errors = Counter(
            "sts_fragment_errors_total", "Fragment errors by stage and code.", ["stage", "code"], registry=r
        )
        self.gpu_utilization = Gauge("sts_gpu_utilization_percent", "GPU utilisation (0 without a GPU).", registry=r)
        self.gpu_memory = Gauge("sts_gpu_memory_used_bytes", "GPU memory in use (0 without a GPU).", registry=r)
        # --- extensions ---
        self.duration_match_seconds = Histogram(
            "sts_duration_match_duration_seconds",
            "Duration-matching stage latency.",
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(contract.QUEUE_DEPTH, "Fragments admitted but waiting for an engine.", registry=r)
        self.streams = Gauge(contract.STREAMS, "Initialised streams.", registry=r)
        self.connections = Gauge("sts_connections_active", "Connected Socket.IO clients.", registry=r)
        self.fragments = Counter("sts_fragments_total", "Fragments delivered, by status.", ["status"], registry=r)
        self.backpressure = Counter(
            contract.BACKPRESSURE, "Backpressure events sent, by severity.", ["severity"], registry=r
        )
        self.deadline_misses = Counter(
            "sts_deadline_misses_total",
            "Fragments answered failed/TIMEOUT because their stream's deadline (timeout_ms) came first.",
            registry=r,
        )
        self.streams_refused = Counter(
            contract.STREAMS_REFUSED,
            "stream:init refused POD_FULL, by reason: full (demand), leaving or shedding (not demand).",
            ["reason"],
            registry=r,
        )
        for reason in contract.REFUSAL_REASONS:  # exposed at 0 from the start, so a rate() has a baseline
            self.streams_refused.labels(reason=reason)
        self.streams_moved = Counter(
            "sts_streams_moved_total",
            "Live streams asked to move (STREAM_MOVE) by reason: drain (the pod leaves the pool) or "
            "rebalance (the operator asked it to shed streams).",
            ["reason"],
            registry=r,
        )
        for reason in ("drain", "rebalance"):
            self.streams_moved.labels(reason=reason)
        self.accepting_streams = Gauge(
            contract.ACCEPTING_STREAMS, "1 while this pod takes new streams (/ready/streams).", registry=r
        )
        self.rejected = Counter(contract.REJECTED, "Fragments refused before queueing.", ["code"], registry=r)
        self.variance = Histogram(
            "sts_duration_variance_ratio",
            "|dubbed - original| / original per fragment with speech.",
            buckets=(0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0),
            registry=r,
        )
        self.speed_ratio = Histogram(
            "sts_speed_ratio",
            "Time-stretch tempo applied to synthesised speech.",
            buckets=(0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 1.75, 2.0, 3.0),
            registry=r,
        )
        self.asr_model_calls = Counter(
            "sts_asr_model_calls_total", "Calls into the ASR model (batched calls count once).", registry=r
        )
        self.asr_batch_size = Histogram(
            "sts_asr_batch_size",
            "Fragments per ASR model call.",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32, 64, 128, 256),  # up to ASR_MAX_BATCH's bound
            registry=r,
        )
        self.asr_waiting = Gauge(
            "sts_asr_waiting",
            "Fragments waiting for the ASR model: in the batching window, or behind a running batched call "
            "(they form the next batch).",
            registry=r,
        )
        # Labels are ISO codes: Whisper's ~100 languages bound them, never free text.
        self.language_mismatches = Counter(
            "sts_language_mismatch_total",
            "Fragments whose detected language confidently differs from the stream's source language "
            "(language check warn or refuse), by source and detected language.",
            ["source", "detected"],
            registry=r,
        )
        self.mt_fallbacks = Counter(
            "sts_translation_fallback_total", "Translations served by the fallback engine.", registry=r
        )
        self.translation_fit = Counter(
            "sts_translation_fit_total",
            "Lines spoken after the slot fit (MT_BUDGET), by origin: first (fitted as translated), "
            "shorter / tighter (a rewrite), rule-based (the fallback engine's line fitted better).",
            ["origin"],
            registry=r,
        )
        self.translation_rewrites = Counter(
            "sts_translation_rewrites_total",
            "Fragments whose synthesised line would have played faster than natural (tempo > 1.2) and "
            "were re-translated shorter once (MT_ENGINE=llm with MT_BUDGET).",
            registry=r,
        )
        self.mt_guard = Counter(
            "sts_translation_guard_total",
            "LLM answers rejected by a guard (empty, over_budget, repetition, wrong_language, untranslated, "
            "glossary) and translated by the rule-based MT instead, by reason.",
            ["reason"],
            registry=r,
        )
        self.ready = Gauge(contract.READY, "1 when models are loaded and the process is not draining.", registry=r)
        self.model_load_seconds = Gauge("sts_model_load_seconds", "Time spent loading engines at start-up.", registry=r)
        self.warmup_seconds = Gauge(
            "sts_warmup_seconds",
            "Time spent dubbing the built-in warm-up sample at start-up, after loading, before ready.",
            registry=r,
        )
        self.info = Info("sts_build", "Version and engines.", registry=r)
        # process_resident_memory_bytes & co: memory growth over a soak is read from here.
        ProcessCollector(registry=r)
        self._nvml_handle: object | None = None
        self._init_gpu()

    def _init_gpu(self) -> None:
        """NVML is optional: without it (or without a GPU) the GPU gauges stay 0, never crash."""
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml_handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:
            self._nvml_handle = None

    def refresh_gpu(self) -> None:
        if self._nvml_handle is None:
            return
        with contextlib.suppress(Exception):
            import pynvml

            self.gpu_utilization.set(pynvml.nvmlDeviceGetUtilizationRates(self._nvml_handle).gpu)
            self.gpu_memory.set(pynvml.nvmlDeviceGetMemoryInfo(self._nvml_handle).used)

    def count_error(self, error: DubbingError, default_stage: Stage = Stage.PROTOCOL) -> None:
        """One ``sts_errors_total`` sample for ``error``, under its stage (or ``default_stage``)."""
        self.errors.labels(stage=str(error.stage or default_stage), code=str(error.code)).inc()

    def render(self) -> bytes:
        self.refresh_gpu()
        return generate_latest(self.registry)
