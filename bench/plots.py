"""PNG plots of the benchmark results (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def latency_over_time(rows: list[dict[str, Any]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(9, 4))
    seq = [r["sequence_number"] for r in rows]
    ax.plot(seq, [r["latency_ms"] / 1000 for r in rows], "o-", label="end to end (sent → processed)")
    ax.plot(seq, [r["processing_time_ms"] / 1000 for r in rows], "s-", label="server processing")
    bottom = np.zeros(len(rows))
    for key in ("asr_ms", "translation_ms", "tts_ms", "duration_match_ms"):
        values = np.array([r.get("stage_timings", {}).get(key, 0) / 1000 for r in rows])
        ax.bar(seq, values, bottom=bottom, alpha=0.35, label=key.replace("_ms", ""))
        bottom += values
    ax.axhline(6.0, color="red", linestyle="--", label="fragment duration (6 s)")
    ax.set_xlabel("fragment (sequence number)")
    ax.set_ylabel("seconds")
    ax.set_title("Latency per fragment, one real-time stream")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def latency_cdf(rows: list[dict[str, Any]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("latency_ms", "end to end"), ("processing_time_ms", "processing")):
        values = np.sort([r[key] / 1000 for r in rows])
        ax.plot(values, np.arange(1, len(values) + 1) / len(values), label=label)
    ax.axvline(6.0, color="red", linestyle="--", label="fragment duration")
    ax.set_xlabel("seconds")
    ax.set_ylabel("fraction of fragments")
    ax.set_title("Latency CDF")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def streams_vs_p95(levels: dict[str, list[dict[str, Any]]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, rows in levels.items():
        ax.plot(
            [r["streams"] for r in rows],
            [r["processing_p95_ms"] / 1000 for r in rows],
            "o-",
            label=key.replace("_", " "),
        )
    ax.axhline(6.0, color="red", linestyle="--", label="fragment duration")
    ax.set_xlabel("concurrent real-time streams")
    ax.set_ylabel("p95 processing (s)")
    ax.set_title("Streams per machine")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def variance_histogram(variance: list[float], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(np.array(variance) * 100, bins=20)
    ax.axvline(2.0, color="orange", linestyle="--", label="±2 % target")
    ax.set_xlabel("|dubbed - original| / original (%)")
    ax.set_ylabel("fragments with speech")
    ax.set_title("Duration fidelity")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def rss_over_time(samples: list[tuple[float, float]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([t / 60 for t, _ in samples], [mb for _, mb in samples], "o-")
    ax.set_xlabel("minutes")
    ax.set_ylabel("resident memory (MiB)")
    ax.set_title("Soak: server memory")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def gpu_asr(runs: dict[str, dict[str, Any]], path: Path) -> None:
    """Batched throughput and paced-stream p95 of faster-whisper on a GPU, one line per run/config."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, run in runs.items():
        for row in run["results"]:
            if "batch_sweep" not in row or row["device"] != "cuda":
                continue
            sweep = row["batch_sweep"]
            left.plot(
                [r["batch"] for r in sweep], [r["fragments_per_s"] for r in sweep], "o-", label=f"{name} {row['label']}"
            )
            if row.get("paced_streams"):
                paced = row["paced_streams"]
                right.plot(
                    [r["streams"] for r in paced],
                    [r["p95_ms"] / 1000 for r in paced],
                    "o-",
                    label=f"{name} {row['label']}",
                )
    left.set_xscale("log", base=2)
    left.set_xlabel("fragments per model call (batch)")
    left.set_ylabel("6 s fragments per second")
    left.set_title("Batched ASR throughput")
    left.legend(fontsize=7)
    right.axhline(2.0, color="red", linestyle="--", label="ASR budget (2 s)")
    right.set_xscale("log", base=2)
    right.set_yscale("log")
    right.set_xlabel("real-time streams (one 6 s fragment every 6 s each)")
    right.set_ylabel("ASR p95 latency (s)")
    right.set_title("Paced streams through the AsrBatcher")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
