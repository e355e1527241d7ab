// A user's turn queue: turns run one at a time, in arrival order, each holding the user's turn
// lease (waiting while another instance runs a turn of this user). The queue owns the waiting
// turns, the running one and the wait for the lease; what a turn is and does is its host's.
import type { Logger, Redactor } from "../log.ts";
import { cancelledFrame, streamErrorFrame, turnErrorFrame, turnErrorText, type Refusal } from "../protocol.ts";
import type { Coordinator, TurnLease } from "./coordinator.ts";
import type { UserSockets } from "./fanout.ts";
import { sendTurnEnd, type QueuedTurn, type Turn } from "./turn.ts";

/** What the queue needs of its session. */
export interface TurnQueueHost {
  userId: string;
  sockets: UserSockets;
  coordinator: Coordinator;
  log: Logger;
  redactor: Redactor;
  maxQueuedTurns: number;
  /** The daily token quota's refusal, if the user has used it up. */
  quotaRefusal(): Promise<Refusal | undefined>;
  /** Reads the history another instance may have grown, holding the lease. */
  reload(lease: TurnLease): Promise<void>;
  /** The Turn of a queued message, holding the lease. */
  turn(queued: QueuedTurn, lease: TurnLease): Turn;
  /** Runs it (the loop is agent.ts's). */
  run(turn: Turn, queued: QueuedTurn): Promise<unknown>;
  /** After each turn that ran. */
  ended(): void;
}

export class TurnQueue {
  readonly #host: TurnQueueHost;
  readonly #queue: QueuedTurn[] = [];
  #running: Turn | undefined;
  #pumping: Promise<void> | undefined;
  #closed = false;
  #paused = false;
  /** A turn waiting for the user's turn lease: a cancel or close stops the wait. */
  #waiting: AbortController | undefined;

  constructor(host: TurnQueueHost) {
    this.#host = host;
  }

  get running(): Turn | undefined {
    return this.#running;
  }

  /** The turns waiting behind the running one. */
  get waiting(): readonly QueuedTurn[] {
    return this.#queue;
  }

  /** A turn of this user runs or waits here (for the lease, or in the queue being pumped). */
  get pumping(): boolean {
    return this.#pumping !== undefined;
  }

  get busy(): boolean {
    return this.#running !== undefined || this.#queue.length > 0;
  }

  /** Whether one more fits (limits.max_queued_turns); the refusal says why. */
  refusal(): Refusal | undefined {
    if (this.#queue.length < this.#host.maxQueuedTurns) return undefined;
    return {
      code: "queue_full",
      error: `Too many messages waiting: ${this.#queue.length} are queued behind the running turn (limits.max_queued_turns). Wait for an answer, then send again`,
    };
  }

  /** Queues a turn; returns its position (0: it runs next). start() runs it. */
  push(queued: QueuedTurn): number {
    const position = this.#queue.length + (this.#running ? 1 : 0);
    this.#queue.push(queued);
    return position;
  }

  /** Runs the queued turns, one at a time, unless they already run (or the queue is paused). */
  start(): void {
    void this.#pump();
  }

  /**
   * For a New chat: nothing runs until resume(). Drops the queued turns, stops the waiting and the
   * running one, and waits until the cancelled turn has finished writing.
   */
  async pause(): Promise<{ dropped: number; stopped: boolean }> {
    this.#paused = true;
    const dropped = this.#queue.length;
    const stopped = this.#running !== undefined || this.#waiting !== undefined;
    this.#queue.length = 0;
    this.#waiting?.abort();
    this.#running?.cancel();
    await this.#pumping;
    return { dropped, stopped };
  }

  /** Messages sent while paused run now. */
  resume(): void {
    this.#paused = false;
    if (this.#queue.length > 0) void this.#pump();
  }

  /** Idempotent: drops queued turns, interrupts the running one; resolves once it is written. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#queue.length = 0;
    this.#waiting?.abort();
    this.#running?.interrupt();
    await this.#pumping;
  }

  #pump(): Promise<void> {
    this.#pumping ??= (async () => {
      try {
        while (!this.#closed && !this.#paused) {
          const next = this.#queue.shift();
          if (!next) break;
          await this.#runOne(next);
        }
      } finally {
        this.#pumping = undefined;
      }
    })();
    return this.#pumping;
  }

  /**
   * Runs one queued turn: first the user's turn lease (waiting while another instance runs a turn
   * of this user), and the history as the store has it when others may have grown it.
   */
  async #runOne(queued: QueuedTurn): Promise<void> {
    const host = this.#host;
    if (!(await this.#withinQuota(queued))) return;
    const abort = new AbortController();
    this.#waiting = abort;
    let lease: TurnLease | undefined;
    try {
      lease = await host.coordinator.acquire(host.userId, abort.signal);
      if (lease.historyStale) {
        // Holding the lease, no other instance runs a turn of this user: frames kept from one that
        // never ended (its instance died) are stale and must not be replayed any more.
        host.sockets.forgetTurn();
        await host.reload(lease);
      }
    } catch (error) {
      // Held but not used (the history could not be read): let it go, or its renewals keep it forever.
      await lease?.release();
      const cancelled = abort.signal.aborted;
      const reason = host.redactor.redact((error as Error).message);
      host.log.warn("turn_not_started", { user_id: host.userId, turn_id: queued.turnId, error: reason });
      const frame = cancelled
        ? cancelledFrame(queued.turnId)
        : streamErrorFrame("server_unavailable", turnErrorText(reason), { turnId: queued.turnId });
      sendTurnEnd(host.sockets, queued.peer, frame, cancelled ? turnErrorFrame("turn_cancelled", "the turn was cancelled") : undefined);
      return;
    } finally {
      this.#waiting = undefined;
    }
    try {
      const turn = host.turn(queued, lease);
      this.#running = turn;
      try {
        await host.run(turn, queued);
      } finally {
        this.#running = undefined;
        host.ended();
      }
    } finally {
      await lease.release();
    }
  }

  /**
   * The daily token quota, checked when a turn is about to start (earlier turns of the queue have
   * been counted by then). It is read from the store, so it holds across restarts and instances.
   */
  async #withinQuota(queued: QueuedTurn): Promise<boolean> {
    const refused = await this.#host.quotaRefusal();
    if (refused === undefined) return true;
    const { log, userId, sockets } = this.#host;
    log.warn("turn_refused", { user_id: userId, turn_id: queued.turnId, code: refused.code, reason: refused.error });
    sendTurnEnd(sockets, queued.peer, streamErrorFrame(refused.code, refused.error, { turnId: queued.turnId }));
    return false;
  }
}
