// The one place frames go out to a user's sockets: this instance's sockets directly, the user's
// sockets on other instances through the Coordinator. It also keeps the frames of the turn in
// progress (run here or elsewhere), so a streaming socket that joins mid-turn picks it up.
import { endsTurn, type ServerFrame, type StreamFrame } from "../protocol.ts";
import type { Coordinator } from "./coordinator.ts";
import { replayFrames } from "./replay.ts";
import type { TraceCarrier } from "../telemetry/tracer.ts";

/** One open socket of a user, as the session sees it. */
export interface Peer {
  readonly id: number;
  /** Opted in to the streaming frames (`?stream=1`); otherwise it gets only the seed's frames. */
  readonly streaming: boolean;
  send(frame: ServerFrame): void;
}

/** Frames about the user's servers, never part of a turn's replay. */
const OUTSIDE_TURNS = new Set<StreamFrame["type"]>(["servers", "auth_required", "auth_completed"]);

export class UserSockets {
  readonly #userId: string;
  readonly #coordinator: Coordinator;
  readonly #peers = new Set<Peer>();
  /** Every streaming frame of the turn in progress, for a streaming socket that joins mid-turn. */
  #turnFrames: StreamFrame[] = [];

  readonly #maxReplayBytes: number;

  /** `maxReplayBytes`: limits.max_replay_bytes, the most of a turn so far a joining socket is sent. */
  constructor(userId: string, coordinator: Coordinator, maxReplayBytes = Infinity) {
    this.#userId = userId;
    this.#coordinator = coordinator;
    this.#maxReplayBytes = maxReplayBytes;
  }

  get size(): number {
    return this.#peers.size;
  }

  has(peer: Peer): boolean {
    return this.#peers.has(peer);
  }

  /** Whether someone can answer a question now (approvals need a streaming socket). */
  get anyStreaming(): boolean {
    for (const peer of this.#peers) if (peer.streaming) return true;
    return false;
  }

  /** A new socket; a streaming one is first shown the turn in progress. */
  add(peer: Peer): void {
    this.#peers.add(peer);
    if (peer.streaming) for (const frame of replayFrames(this.#turnFrames, this.#maxReplayBytes)) peer.send(frame);
  }

  delete(peer: Peer): void {
    this.#peers.delete(peer);
  }

  /** The running turn's trace context, carried by its frames to the user's other instances. */
  trace: TraceCarrier | undefined;

  /** A frame of the turn running here: to every streaming socket of the user, kept for replay. */
  turnFrame(frame: StreamFrame): void {
    this.#keep(frame);
    this.#toLocal(frame);
    this.#coordinator.publish(this.#userId, { kind: "frame", frame, ...(this.trace ? { trace: this.trace } : {}) });
  }

  /** A frame that is not part of a turn (queued, reset, files_changed): to every streaming socket of the user. */
  broadcast(frame: StreamFrame): void {
    this.#toLocal(frame);
    this.#coordinator.publish(this.#userId, { kind: "frame", frame });
  }

  /** A seed frame for this instance's seed-protocol sockets only (they get no streaming frames). */
  toSeed(frame: ServerFrame): void {
    for (const peer of this.#peers) if (!peer.streaming) peer.send(frame);
  }

  /** A frame published by another instance: to this instance's streaming sockets only. */
  fromElsewhere(frame: StreamFrame): void {
    if (frame.type !== "queued" && frame.type !== "reset" && frame.type !== "files_changed" && !OUTSIDE_TURNS.has(frame.type))
      this.#keep(frame);
    this.#toLocal(frame);
  }

  /** The turn whose frames are being kept (running here or elsewhere), if any. */
  get turnInProgress(): string | undefined {
    const first = this.#turnFrames[0];
    return first?.type === "turn_start" ? first.turn_id : undefined;
  }

  /** Forgets a turn that will never end (its instance died): it must not be replayed any more. */
  forgetTurn(): void {
    this.#turnFrames = [];
  }

  #keep(frame: StreamFrame): void {
    if (frame.type === "turn_start") this.#turnFrames = [];
    // Consecutive deltas are kept as one: a replay needs the text, not every piece of it.
    const last = this.#turnFrames.at(-1);
    // Only a call's latest progress matters to a replay: however often a server reports, one is kept.
    if (frame.type === "tool_progress") {
      const index = this.#turnFrames.findIndex((kept) => kept.type === "tool_progress" && kept.call_id === frame.call_id);
      if (index >= 0) this.#turnFrames.splice(index, 1);
    }
    if (frame.type === "delta" && last?.type === "delta")
      this.#turnFrames[this.#turnFrames.length - 1] = { ...last, text: last.text + frame.text };
    else this.#turnFrames.push(frame);
    if (endsTurn(frame)) this.#turnFrames = [];
  }

  #toLocal(frame: StreamFrame): void {
    for (const peer of this.#peers) if (peer.streaming) peer.send(frame);
  }
}
