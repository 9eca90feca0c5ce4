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
  point_count: number;
  /** Only the selected stream (the one asked for, else the first listed) carries its points. */
  points?: Point[];
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
  /** Connections refused for a missing or wrong token: counted, not listed one by one. */
  auth_refusals: number;
}

/** The token the page was opened with (/console?token=...): sent with every poll and connection. */
export const token: string | null = takeToken();

/**
 * Read ``token=`` as written, not through URLSearchParams: that decodes ``+`` as a space, and a
 * token with ``+`` pasted into the address bar would then be sent wrong. Then take it out of the
 * address bar (and so out of the history and of anything copied from there).
 */
function takeToken(): string | null {
  const raw = /[?&]token=([^&#]*)/.exec(location.search)?.[1];
  if (raw === undefined) return null;
  let value = raw;
  try {
    value = decodeURIComponent(raw);
  } catch {
    // A malformed %-escape: the server reads it as written, so send it as written.
  }
  const url = new URL(location.href);
  const rest = location.search
    .slice(1)
    .split("&")
    .filter((part) => part !== "" && !part.startsWith("token="));
  url.search = rest.length ? `?${rest.join("&")}` : "";
  history.replaceState(history.state, "", url.toString());
  return value;
}

export async function fetchSnapshot(selected: string | null): Promise<Snapshot> {
  const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
  const url = new URL(snapshotUrl());
  if (selected !== null) url.searchParams.set("stream", selected);
  const response = await fetch(url.toString(), { headers, cache: "no-store" });
  if (!response.ok) throw new Error(`snapshot: HTTP ${response.status}`);
  return (await response.json()) as Snapshot;
}

function snapshotUrl(): string {
  // Absolute from the origin, so /console and /console/ both reach /console/api/snapshot.
  return new URL("/console/api/snapshot", location.origin).toString();
}
