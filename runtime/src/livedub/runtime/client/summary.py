"""What a dub did, fragment by fragment: a table for the terminal and, on request, a latency plot.

Both read the JSON report ``dub_file`` writes (the same dicts), so what is shown is what was saved.
*latency* is the client's clock, from sending a fragment to receiving its dub (what a live worker
waits); *processing* is the server's own figure; *tempo* is the time-stretch applied to fit the dub to
the fragment (``metadata.speed_ratio``: 1.0 = untouched, clamped to SPEED_RATIO_MIN/MAX).
matplotlib is a development dependency only, so the plot imports it lazily and says how to get it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

_COLUMNS = ("seq", "status", "latency", "processing", "tempo", "error")


def _row(fragment: dict[str, Any]) -> tuple[str, ...]:
    metadata = fragment.get("metadata") or {}
    error = fragment.get("error") or {}
    ratio = metadata.get("speed_ratio")
    latency = fragment.get("latency_ms")
    processing = fragment.get("processing_time_ms")
    return (
        str(fragment.get("sequence_number", "?")),
        str(fragment.get("status", "?")),
        f"{latency / 1000:.2f} s" if isinstance(latency, int | float) else "-",
        f"{processing / 1000:.2f} s" if isinstance(processing, int | float) else "-",
        f"x{ratio:.2f}" if isinstance(ratio, int | float) else "-",
        str(error.get("code", "")) if error else "",
    )


def fragment_table(report: dict[str, Any]) -> str:
    """One line per fragment, columns aligned: sequence, status, latency, processing, tempo, error."""
    rows = [_COLUMNS, *(_row(f) for f in report.get("fragments", []))]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def plotting_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


MISSING_MATPLOTLIB = "--plot needs matplotlib, which is not installed: pip install matplotlib"


def write_latency_plot(report: dict[str, Any], path: Path) -> None:
    """Per-fragment latency and server processing time (bars coloured by status) against the sequence."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never open a window, work without a display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fragments = report.get("fragments", [])
    sequence = [f.get("sequence_number", i) for i, f in enumerate(fragments)]
    latency = [(f.get("latency_ms") or 0) / 1000 for f in fragments]
    processing = [(f.get("processing_time_ms") or 0) / 1000 for f in fragments]
    colours = {"success": "tab:green", "partial": "tab:orange", "failed": "tab:red"}
    figure, axes = plt.subplots(figsize=(8, 4))
    bar_colours = [colours.get(f.get("status", ""), "tab:gray") for f in fragments]
    axes.bar(sequence, latency, color=bar_colours, alpha=0.6, label="latency (colour = status)")
    axes.plot(sequence, processing, "k.-", label="server processing")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("fragment (sequence number)")
    axes.set_ylabel("seconds")
    axes.set_title(f"latency per fragment (send -> dub received), {report.get('stream_id', '')}")
    axes.legend(loc="upper left")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
