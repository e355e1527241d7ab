// One WebSocket as a session sees it: frames out with backpressure, and the heartbeat state.
import { WebSocket } from "ws";
import { encodeFrame, type DeltaFrame, type ServerFrame } from "../protocol.ts";
import type { Redactor } from "../secrets/redactor.ts";
import type { Peer } from "../session/fanout.ts";

/** Frames are never changed once sent (merging makes new objects), so their text can be kept. */
const encodedFrames = new WeakMap<Redactor, WeakMap<ServerFrame, string>>();

export interface SendLimits {
  /** Past this many unsent bytes, streaming deltas are merged instead of queued one by one. */
  softBytes: number;
  /** Past this many the peer is too slow to keep: the socket is dropped. */
  hardBytes: number;
}

export class SocketPeer implements Peer {
  readonly id: number;
  readonly streaming: boolean;
  readonly #ws: WebSocket;
  readonly #limits: SendLimits;
  readonly #onDrop: (bufferedBytes: number) => void;
  /** Every frame passes it on its way out: the one point where all of them go. */
  readonly #redactor: Redactor | undefined;
  /** Deltas held back while the socket is congested, merged per turn. */
  #pending: DeltaFrame | undefined;
  /** Set by a pong; the heartbeat terminates a socket that stayed silent for a whole interval. */
  alive = true;

  constructor(options: {
    id: number;
    ws: WebSocket;
    streaming: boolean;
    limits: SendLimits;
    onDrop: (bufferedBytes: number) => void;
    redactor?: Redactor;
  }) {
    this.#redactor = options.redactor;
    this.id = options.id;
    this.#ws = options.ws;
    this.streaming = options.streaming;
    this.#limits = options.limits;
    this.#onDrop = options.onDrop;
    this.#ws.on("pong", () => {
      this.alive = true;
    });
  }

  send(frame: ServerFrame): void {
    if (this.#ws.readyState !== WebSocket.OPEN || this.#tooSlow()) return;
    if ("type" in frame && frame.type === "delta") {
      if (this.#ws.bufferedAmount > this.#limits.softBytes || this.#pending) return this.#hold(frame);
    } else {
      this.#flush();
    }
    this.#ws.send(this.#encode(frame));
  }

  #encode(frame: ServerFrame): string {
    const redactor = this.#redactor;
    if (!redactor) return encodeFrame(frame);
    // The fan-out hands one frame object to every tab of the user: redacted and encoded once.
    let byFrame = encodedFrames.get(redactor);
    if (!byFrame) encodedFrames.set(redactor, (byFrame = new WeakMap()));
    let text = byFrame.get(frame);
    if (text === undefined) byFrame.set(frame, (text = encodeFrame(redactor.redactValue(frame))));
    return text;
  }

  /**
   * Past the hard cap the socket is dropped (the turn goes on into the history). What the reader
   * is behind by is the socket's buffer plus the text held back for it: while deltas are held
   * the buffer alone stays near the soft cap, so it would never be dropped however far behind.
   */
  #tooSlow(): boolean {
    const behind = this.#ws.bufferedAmount + (this.#pending?.text.length ?? 0);
    if (behind <= this.#limits.hardBytes) return false;
    this.#onDrop(behind);
    this.#pending = undefined;
    this.#ws.terminate();
    return true;
  }

  #hold(delta: DeltaFrame): void {
    if (this.#pending && this.#pending.turn_id === delta.turn_id) {
      this.#pending = { ...this.#pending, text: this.#pending.text + delta.text };
    } else {
      this.#flush();
      this.#pending = delta;
    }
    // Send the merged text as soon as the socket has drained below the soft cap.
    if (this.#ws.bufferedAmount <= this.#limits.softBytes) this.#flush();
    else this.#tooSlow();
  }

  #flush(): void {
    const pending = this.#pending;
    this.#pending = undefined;
    if (pending && this.#ws.readyState === WebSocket.OPEN) this.#ws.send(this.#encode(pending));
  }

  /** One heartbeat tick: false when the peer missed the last ping and was terminated. */
  heartbeat(): boolean {
    if (!this.alive) {
      this.#ws.terminate();
      return false;
    }
    this.alive = false;
    this.#ws.ping();
    return true;
  }
}
