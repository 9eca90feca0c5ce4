// The try-it panel: sends a file or the microphone to this runtime over socket.io-client, in the
// guide's wire dialect (seed guide section 10: stream:init, fragment:data with base64 pcm_s16le,
// fragment:processed back), and plays the dub in an <audio> element once the stream is complete.
import { io, type Socket } from "socket.io-client";
import { token } from "./api";
import { RATE, decodeFile, fromBase64, fromPcm16, resample, toBase64, toPcm16, wavBlob } from "./audio";

const FRAGMENT_S = 6;

interface Processed {
  fragment_id: string;
  status: "success" | "partial" | "failed";
  sequence_number?: number;
  dubbed_audio?: string | ArrayBuffer;
  transcript?: string;
  translated_text?: string;
  format?: string;
  sample_rate?: number;
  channels?: number;
  processing_time_ms?: number;
  error?: { code: string; message: string };
}

interface Ui {
  status(text: string): void;
  line(text: string): void;
  clear(): void;
  play(blob: Blob): void;
}

/** One try-it run: a connection, a stream, its fragments in flight and the dub collected so far. */
export class TryIt {
  private socket: Socket | null = null;
  private originals = new Map<number, Float32Array>();
  private dubbed = new Map<number, { samples: Float32Array; rate: number }>();
  /** Fragments sent and not answered yet: their sequence number -> resolves when answered. */
  private pending = new Map<number, { done: Promise<void>; resolve: () => void }>();
  private maxInflight = 3;
  private sequence = 0;
  private streamId = "";
  private failure: string | null = null;

  constructor(private readonly ui: Ui) {}

  get busy(): boolean {
    return this.socket !== null;
  }

  async start(source: string, target: string): Promise<void> {
    this.ui.clear();
    this.originals.clear();
    this.dubbed.clear();
    this.sequence = 0;
    this.failure = null;
    this.streamId = `console-${Math.random().toString(36).slice(2, 10)}`;
    const socket = io(location.origin, {
      // Browsers cannot set headers on a WebSocket: the token and ids travel in the auth payload.
      auth: { ...(token ? { token } : {}), worker_id: "console", stream_id: this.streamId },
      reconnection: false,
    });
    this.socket = socket;
    socket.on("fragment:processed", (result: Processed) => void this.onProcessed(result));
    socket.on("error", (error: { code: string; message: string }) => this.ui.line(`error ${error.code}: ${error.message}`));
    // A dropped connection answers nothing more: release whatever waits on it and free the panel.
    socket.on("disconnect", (reason: string) => {
      if (this.socket === socket) this.close(`connection lost (${reason})`);
    });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once("connect", () => resolve());
        socket.once("connect_error", (err: Error & { data?: { message?: string } }) => reject(new Error(err.data?.message ?? err.message)));
      });
      const ready = await this.request<{ session_id?: string; max_inflight?: number; code?: string; message?: string }>(
        "stream:init",
        { source_language: source, target_language: target, chunk_duration_ms: FRAGMENT_S * 1000, sample_rate_hz: RATE, channels: 1, format: "pcm_s16le" },
        ["stream:ready", "error"],
      );
      if (!ready.session_id) throw new Error(`stream:init refused: ${ready.code}: ${ready.message}`);
      this.maxInflight = Math.max(1, ready.max_inflight ?? 3);
    } catch (error) {
      this.close(error instanceof Error ? error.message : String(error));
      throw error;
    }
    this.ui.status(`stream ${this.streamId} ready (${source} → ${target})`);
  }

  /** Give up this run: disconnect, release every fragment still waiting, and free the panel. */
  close(reason: string): void {
    const socket = this.socket;
    this.socket = null;
    socket?.disconnect();
    if (this.pending.size > 0) this.failure = reason;
    for (const { resolve } of this.pending.values()) resolve();
    this.pending.clear();
  }

  /** Send one fragment of 16 kHz mono samples; waits while the stream's window is full. */
  async send(samples: Float32Array): Promise<void> {
    while (this.pending.size >= this.maxInflight) await Promise.race(this.inFlight());
    if (this.socket === null) throw new Error(this.failure ?? "not connected");
    const sequence = this.sequence++;
    this.originals.set(sequence, samples);
    let resolve = () => {};
    const done = new Promise<void>((r) => (resolve = r));
    this.pending.set(sequence, { done, resolve });
    this.socket.emit("fragment:data", {
      fragment_id: `${this.streamId}-${sequence}`,
      stream_id: this.streamId,
      sequence_number: sequence,
      timestamp: Math.round((sequence * FRAGMENT_S * 1000)),
      audio: toBase64(toPcm16(samples)),
      sample_rate: RATE,
      channels: 1,
      format: "pcm_s16le",
      duration_ms: Math.round((samples.length / RATE) * 1000),
    });
  }

  /** End the stream once every fragment is answered, then hand the whole dub to the <audio>. */
  async finish(): Promise<void> {
    await Promise.all(this.inFlight());
    try {
      if (this.socket === null) throw new Error(this.failure ?? "not connected");
      await this.request("stream:end", { stream_id: this.streamId }, ["stream:complete", "error"]);
    } finally {
      this.close("finished");
    }
    const rate = [...this.dubbed.values()][0]?.rate ?? RATE;
    const parts: Float32Array[] = [];
    for (let s = 0; s < this.sequence; s++) {
      // A failed fragment plays its original audio, as the guide tells a worker to do.
      parts.push(this.dubbed.get(s)?.samples ?? resample(this.originals.get(s) ?? new Float32Array(0), RATE, rate));
    }
    const all = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let offset = 0;
    for (const part of parts) {
      all.set(part, offset);
      offset += part.length;
    }
    this.ui.play(wavBlob(all, rate));
    const dubbed = this.dubbed.size;
    this.ui.status(`done: ${dubbed} of ${this.sequence} fragments dubbed${this.failure ? ` (last failure: ${this.failure})` : ""}`);
  }

  async dubFile(file: Blob, source: string, target: string): Promise<void> {
    this.ui.status("decoding…");
    const samples = await decodeFile(file);
    await this.start(source, target);
    try {
      const step = FRAGMENT_S * RATE;
      const count = Math.ceil(samples.length / step);
      for (let i = 0; i < count; i++) {
        this.ui.status(`sending fragment ${i + 1} of ${count}`);
        await this.send(samples.subarray(i * step, Math.min(samples.length, (i + 1) * step)));
      }
      this.ui.status("waiting for the last fragments…");
    } catch (error) {
      this.close(error instanceof Error ? error.message : String(error));
      throw error;
    }
    await this.finish();
  }

  private inFlight(): Promise<void>[] {
    return [...this.pending.values()].map((p) => p.done);
  }

  private async onProcessed(result: Processed): Promise<void> {
    const sequence = result.sequence_number ?? Number(result.fragment_id.split("-").pop());
    try {
      if (result.status !== "failed" && result.dubbed_audio !== undefined) {
        this.dubbed.set(sequence, await this.decodeDub(result));
      } else if (result.error) {
        this.failure = `${result.error.code}: ${result.error.message}`;
      }
      const text = result.translated_text ? `${result.transcript ?? ""} → ${result.translated_text}` : (result.error?.code ?? "");
      this.ui.line(`#${sequence} ${result.status} ${result.processing_time_ms ?? "?"} ms  ${text}`);
    } finally {
      this.pending.get(sequence)?.resolve();
      this.pending.delete(sequence);
    }
  }

  private async decodeDub(result: Processed): Promise<{ samples: Float32Array; rate: number }> {
    const raw = typeof result.dubbed_audio === "string" ? fromBase64(result.dubbed_audio) : new Uint8Array(result.dubbed_audio!);
    const rate = result.sample_rate ?? 24000;
    if ((result.format ?? "pcm_s16le") === "pcm_s16le") return { samples: fromPcm16(raw, result.channels ?? 1), rate };
    return { samples: await decodeFile(new Blob([raw as BlobPart])), rate: RATE };
  }

  /** Emit ``event`` and wait for the first of ``answers``; a dropped connection rejects it. */
  private request<T>(event: string, payload: object, answers: string[]): Promise<T> {
    const socket = this.socket!;
    return new Promise<T>((resolve, reject) => {
      const done = () => {
        handlers.forEach(([n, h]) => socket.off(n, h));
        socket.off("disconnect", dropped);
      };
      const dropped = (reason: string) => {
        done();
        reject(new Error(`${event}: connection lost (${reason})`));
      };
      const handlers = answers.map((name) => {
        const handler = (data: T) => {
          done();
          resolve(data);
        };
        socket.on(name, handler);
        return [name, handler] as const;
      });
      socket.on("disconnect", dropped);
      socket.emit(event, payload);
    });
  }
}

/** The microphone, in 16 kHz mono fragments of FRAGMENT_S seconds, through an AudioWorklet. */
export class Microphone {
  private context: AudioContext | null = null;
  private stream: MediaStream | null = null;
  private buffered: Float32Array[] = [];
  private length = 0;

  constructor(private readonly onFragment: (samples: Float32Array) => void) {}

  async start(): Promise<void> {
    this.stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
    // A context at 16 kHz: the browser resamples the microphone for us.
    this.context = new AudioContext({ sampleRate: RATE });
    const worklet = `registerProcessor("tap", class extends AudioWorkletProcessor {
      process(inputs) { if (inputs[0] && inputs[0][0]) this.port.postMessage(inputs[0][0].slice()); return true; }
    });`;
    const url = URL.createObjectURL(new Blob([worklet], { type: "text/javascript" }));
    await this.context.audioWorklet.addModule(url);
    URL.revokeObjectURL(url);
    const tap = new AudioWorkletNode(this.context, "tap", { numberOfInputs: 1, numberOfOutputs: 0, channelCount: 1, channelCountMode: "explicit" });
    tap.port.onmessage = (event: MessageEvent<Float32Array>) => this.push(event.data);
    this.context.createMediaStreamSource(this.stream).connect(tap);
  }

  async stop(): Promise<void> {
    this.stream?.getTracks().forEach((track) => track.stop());
    await this.context?.close();
    this.context = null;
    if (this.length > 0) this.flush();
  }

  private push(frame: Float32Array): void {
    this.buffered.push(frame);
    this.length += frame.length;
    if (this.length >= FRAGMENT_S * RATE) this.flush();
  }

  private flush(): void {
    const out = new Float32Array(this.length);
    let offset = 0;
    for (const frame of this.buffered) {
      out.set(frame, offset);
      offset += frame.length;
    }
    this.buffered = [];
    this.length = 0;
    this.onFragment(out);
  }
}
