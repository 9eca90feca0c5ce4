// The runtime's /console/api/snapshot document (server/console_feed.py) and how the page reads it.

export interface Point {
  sequence_number: number | null;
  fragment_id: string;
  status: "success" | "partial" | "failed";
  processing_time_ms: number | null;
  stage_timings: Record<string, number>;
  error_code: string | null;
  at: number;
}

export interface StreamInfo {
  stream_id: string;
  session_id: string | null;
  worker_id?: string | null;
  dialect: string;
  source_language: string | null;
  target_language: string | null;
  engines: Record<string, string> | null;
  state: string;
  live: boolean;
  inflight?: number;
  backpressure: string;
  stats?: { received: number; delivered: number; success: number; partial: number; failed: number; avg_processing_time_ms: number };
  complete: { success: number; partial: number; failed: number; avg_processing_time_ms?: number } | null;
  points: Point[];
}

export interface ErrorInfo {
  at: number;
  code: string;
  message: string;
  stage: string;
  retryable: boolean;
  event?: string;
  stream_id?: string;
  fragment_id?: string;
}

export interface Snapshot {
  ready: boolean;
  draining: boolean;
  placement: string;
  engines: Record<string, string> | null;
  streams_live: number;
  connections: number;
  inflight: number;
  max_pod_inflight: number;
  streams: StreamInfo[];
  errors: ErrorInfo[];
}

/** The token the page was opened with (/console?token=...): sent with every poll and connection. */
export const token: string | null = new URLSearchParams(location.search).get("token");

export async function fetchSnapshot(): Promise<Snapshot> {
  const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
  const response = await fetch(snapshotUrl(), { headers, cache: "no-store" });
  if (!response.ok) throw new Error(`snapshot: HTTP ${response.status}`);
  return (await response.json()) as Snapshot;
}

function snapshotUrl(): string {
  // Absolute from the origin, so /console and /console/ both reach /console/api/snapshot.
  return new URL("/console/api/snapshot", location.origin).toString();
}
