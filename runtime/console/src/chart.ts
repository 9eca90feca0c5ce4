// The per-fragment latency chart (uPlot): processing time and its stages against sequence number.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { Point } from "./api";

const STAGES = ["asr_ms", "translation_ms", "tts_ms"] as const;

export class LatencyChart {
  private plot: uPlot;

  constructor(private readonly element: HTMLElement) {
    this.plot = new uPlot(
      {
        width: Math.max(320, element.clientWidth),
        height: 260,
        scales: { x: { time: false } },
        // Whole sequence numbers only on the x axis (uPlot would tick 0.05 between two fragments).
        axes: [{ label: "fragment (sequence number)", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500] }, { label: "ms" }],
        series: [
          { label: "fragment" },
          { label: "processing ms", stroke: "#1f5fd1", width: 2, points: { show: true, size: 6 } },
          { label: "ASR", stroke: "#2a9d8f" },
          { label: "MT", stroke: "#e9a23b" },
          { label: "TTS", stroke: "#c2456b" },
        ],
      },
      [[], [], [], [], []],
      element,
    );
    new ResizeObserver(() => this.plot.setSize({ width: Math.max(320, element.clientWidth), height: 260 })).observe(element);
  }

  /** Points with no processing time (rejections) have nothing to plot. */
  show(points: Point[]): void {
    const plotted = points.filter((p) => p.sequence_number !== null && p.processing_time_ms !== null && p.processing_time_ms > 0);
    plotted.sort((a, b) => (a.sequence_number ?? 0) - (b.sequence_number ?? 0));
    const x = plotted.map((p) => p.sequence_number ?? 0);
    const total = plotted.map((p) => p.processing_time_ms);
    const stages = STAGES.map((stage) => plotted.map((p) => p.stage_timings[stage] ?? null));
    this.plot.setData([x, total, ...stages] as uPlot.AlignedData);
    this.element.dataset.points = String(plotted.length);
  }
}
