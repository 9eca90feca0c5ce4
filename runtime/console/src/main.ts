// The console page: polls the runtime's snapshot once a second and renders streams, the latency
// chart of the selected stream, errors and the runtime's state; wires up the try-it panel.
import "./style.css";
import { fetchSnapshot, type Snapshot, type StreamInfo } from "./api";
import { LatencyChart } from "./chart";
import { Microphone, TryIt } from "./tryit";

const POLL_MS = 1000;
const LANGUAGES = ["en", "es", "fr", "de"];

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const chart = new LatencyChart($("chart"));
let selected: string | null = null;

function cell(row: HTMLTableRowElement, text: string, className?: string): void {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
}

function renderStreams(streams: StreamInfo[]): void {
  const body = ($("streams") as HTMLTableElement).tBodies[0];
  body.replaceChildren();
  $("no-streams").hidden = streams.length > 0;
  for (const s of streams) {
    const row = body.insertRow();
    row.dataset.streamId = s.stream_id;
    row.className = s.stream_id === selected ? "selected" : "";
    row.onclick = () => {
      selected = s.stream_id;
      void refresh();
    };
    const counts = s.stats ?? s.complete;
    cell(row, s.stream_id);
    cell(row, s.worker_id ?? "");
    cell(row, `${s.source_language ?? "?"} → ${s.target_language ?? "?"}`, "languages");
    cell(row, s.dialect, "dialect");
    cell(row, s.state, "state");
    cell(row, s.inflight === undefined ? "" : String(s.inflight));
    cell(row, s.backpressure, `bp-${s.backpressure}`);
    cell(row, counts ? `${counts.success} / ${counts.partial} / ${counts.failed}` : "");
    cell(row, counts?.avg_processing_time_ms ? String(Math.round(counts.avg_processing_time_ms)) : "");
  }
}

function renderErrors(snapshot: Snapshot): void {
  const list = $("errors");
  list.replaceChildren();
  $("no-errors").hidden = snapshot.errors.length > 0;
  for (const e of snapshot.errors) {
    const item = document.createElement("li");
    const when = new Date(e.at * 1000).toLocaleTimeString();
    item.textContent = `${when} ${e.stage}/${e.code}${e.stream_id ? ` [${e.stream_id}]` : ""}: ${e.message}`;
    list.append(item);
  }
}

function renderRuntime(snapshot: Snapshot): void {
  const engines = snapshot.engines ? Object.entries(snapshot.engines).map(([k, v]) => `${k}=${v}`).join(", ") : "loading";
  $("runtime").textContent =
    `${snapshot.ready ? "ready" : "not ready"} · ${snapshot.placement} · ${snapshot.streams_live} live streams · ` +
    `${snapshot.inflight}/${snapshot.max_pod_inflight} fragments in flight · engines: ${engines}` +
    (snapshot.auth_refusals ? ` · ${snapshot.auth_refusals} connections refused (token)` : "");
}

async function refresh(): Promise<void> {
  let snapshot: Snapshot;
  try {
    snapshot = await fetchSnapshot(selected);
  } catch (error) {
    $("runtime").textContent = String(error);
    return;
  }
  renderRuntime(snapshot);
  if (!snapshot.streams.some((s) => s.stream_id === selected)) selected = snapshot.streams[0]?.stream_id ?? null;
  renderStreams(snapshot.streams);
  renderErrors(snapshot);
  const stream = snapshot.streams.find((s) => s.stream_id === selected);
  $("chart-stream").textContent = stream ? `(${stream.stream_id})` : "";
  chart.show(stream?.points ?? []);
}

function setUpTryIt(): void {
  const source = $<HTMLSelectElement>("try-source");
  const target = $<HTMLSelectElement>("try-target");
  for (const [select, initial] of [[source, "en"], [target, "es"]] as const) {
    for (const lang of LANGUAGES) select.add(new Option(lang, lang, false, lang === initial));
  }
  const status = $("try-status");
  const lines = $("try-lines");
  const audio = $<HTMLAudioElement>("try-audio");
  const tryIt = new TryIt({
    status: (text) => (status.textContent = text),
    line: (text) => lines.append(Object.assign(document.createElement("li"), { textContent: text })),
    clear: () => lines.replaceChildren(),
    play: (blob) => {
      if (audio.src.startsWith("blob:")) URL.revokeObjectURL(audio.src);
      audio.src = URL.createObjectURL(blob);
    },
  });
  const fail = (error: unknown) => (status.textContent = `failed: ${error instanceof Error ? error.message : String(error)}`);

  $("try-send-file").onclick = () => {
    const file = $<HTMLInputElement>("try-file").files?.[0];
    if (!file) return void (status.textContent = "choose a file first");
    if (tryIt.busy) return;
    tryIt.dubFile(file, source.value, target.value).catch(fail);
  };

  let microphone: Microphone | null = null;
  const micButton = $<HTMLButtonElement>("try-mic");
  micButton.onclick = async () => {
    try {
      if (microphone === null) {
        if (tryIt.busy) return;
        await tryIt.start(source.value, target.value);
        microphone = new Microphone((samples) => void tryIt.send(samples).catch(fail));
        await microphone.start();
        micButton.textContent = "Stop and play the dub";
        status.textContent = "recording: a fragment goes out every 6 s";
      } else {
        const mic = microphone;
        microphone = null;
        micButton.textContent = "Record microphone";
        await mic.stop();
        status.textContent = "waiting for the last fragments…";
        await tryIt.finish();
      }
    } catch (error) {
      const mic = microphone;
      microphone = null;
      micButton.textContent = "Record microphone";
      tryIt.close(error instanceof Error ? error.message : String(error));
      void mic?.stop();
      fail(error);
    }
  };
}

setUpTryIt();
void refresh();
setInterval(() => void refresh(), POLL_MS);
