// HTML → Markdown off the event loop, fair between users. Parsing, Readability and turndown are
// synchronous (about 2 s per MB of markup), and the fetch tool is shared by every session: on the
// main thread one large page would freeze every user's socket, and in one arrival-order queue a
// few users fetching large pages would make everyone else's fetches time out. So each owner (a
// user) has a queue, the queues are served round-robin by a few workers, and markup past
// `maxInputChars` is cut before it is converted. A conversion whose fetch is cancelled or past its
// deadline while it runs stops its worker; the next page starts a fresh one.
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { ConvertReply, ConvertRequest } from "./markdown-worker.ts";

interface Pending {
  owner: string;
  request: ConvertRequest;
  resolve: (markdown: string) => void;
  reject: (error: Error) => void;
}

interface Slot {
  worker: Worker;
  running: Pending | undefined;
}

export interface MarkdownConverterOptions {
  /** Worker threads; 0 picks one per core but one, at least one. */
  workers: number;
  /** Markup longer than this (characters) is cut before conversion, with a note in the result. */
  maxInputChars: number;
}

/** A pool with nothing to do for this long stops its workers; the next page starts one again. */
const IDLE_MS = 30_000;

/** How many workers `workers: 0` means on this machine. */
export function autoWorkers(): number {
  return Math.max(1, availableParallelism() - 1);
}

export class MarkdownConverter {
  readonly #size: number;
  readonly #maxInputChars: number;
  readonly #slots: Slot[] = [];
  /** Waiting pages per owner; an owner with nothing waiting has no entry. */
  readonly #queues = new Map<string, Pending[]>();
  /** When each owner with pages waiting was last served (a sequence number): the least recent goes next. */
  readonly #lastServed = new Map<string, number>();
  #served = 0;
  #nextId = 1;
  #idleTimer: NodeJS.Timeout | undefined;

  constructor(options: MarkdownConverterOptions) {
    this.#size = options.workers > 0 ? options.workers : autoWorkers();
    this.#maxInputChars = options.maxInputChars;
  }

  /** Converts `html` for `owner`; pages of different owners take turns. */
  convert(html: string, url: string, signal: AbortSignal, owner = ""): Promise<string> {
    signal.throwIfAborted();
    // Cut here, before it is copied to a worker: the caller says so to the model (see fetchForModel).
    const input = html.length > this.#maxInputChars ? html.slice(0, this.#maxInputChars) : html;
    return new Promise<string>((resolve, reject) => {
      const pending: Pending = { owner, request: { id: this.#nextId++, html: input, url }, resolve, reject };
      const queue = this.#queues.get(owner);
      if (queue) queue.push(pending);
      else this.#queues.set(owner, [pending]);
      signal.addEventListener("abort", () => this.#abandon(pending, signal), { once: true });
      this.#dispatch();
    });
  }

  /** Gives idle workers the next page of the next owner in turn. */
  #dispatch(): void {
    clearTimeout(this.#idleTimer);
    while (this.#queues.size > 0) {
      const slot = this.#slots.find((candidate) => candidate.running === undefined) ?? this.#newSlot();
      const next = slot && this.#takeNext();
      if (!slot || !next) break;
      slot.running = next;
      slot.worker.postMessage(next.request);
    }
    if (this.#queues.size === 0 && this.#slots.every((slot) => slot.running === undefined) && this.#slots.length > 0) {
      this.#idleTimer = setTimeout(() => this.close(), IDLE_MS).unref();
    }
  }

  /**
   * The first page of the owner served least recently (one that just arrived: first of all), so
   * a user with one page waits for at most the pages already converting, whatever others queued.
   */
  #takeNext(): Pending | undefined {
    let chosen: string | undefined;
    let oldest = Infinity;
    for (const owner of this.#queues.keys()) {
      const served = this.#lastServed.get(owner) ?? -1;
      if (served < oldest) {
        oldest = served;
        chosen = owner;
      }
    }
    if (chosen === undefined) return undefined;
    const queue = this.#queues.get(chosen) ?? [];
    const next = queue.shift();
    this.#lastServed.set(chosen, this.#served++);
    if (queue.length === 0) this.#forget(chosen);
    return next;
  }

  /** An owner with nothing waiting any more: the next page it sends counts as newly arrived. */
  #forget(owner: string): void {
    this.#queues.delete(owner);
    this.#lastServed.delete(owner);
  }

  #newSlot(): Slot | undefined {
    if (this.#slots.length >= this.#size) return undefined;
    const worker = new Worker(new URL("./markdown-worker.mjs", import.meta.url));
    worker.unref(); // never what keeps the process alive
    const slot: Slot = { worker, running: undefined };
    worker.on("message", (reply: ConvertReply) => {
      const pending = slot.running;
      if (!pending || pending.request.id !== reply.id) return;
      slot.running = undefined;
      if ("markdown" in reply) pending.resolve(reply.markdown);
      else pending.reject(new Error(`the page could not be converted to Markdown: ${reply.error}`));
      this.#dispatch();
    });
    worker.on("error", (error) => {
      // The worker died (out of memory on a hostile page, say): fail the page it had, go on.
      slot.running?.reject(new Error(`the page could not be converted to Markdown: ${error.message}`));
      slot.running = undefined;
      this.#drop(slot);
      this.#dispatch();
    });
    this.#slots.push(slot);
    return slot;
  }

  #abandon(pending: Pending, signal: AbortSignal): void {
    const reason = signal.reason instanceof Error ? signal.reason : new Error("the conversion was cancelled");
    const queue = this.#queues.get(pending.owner);
    const index = queue?.indexOf(pending) ?? -1;
    if (queue && index !== -1) {
      queue.splice(index, 1);
      if (queue.length === 0) this.#forget(pending.owner);
      return pending.reject(reason);
    }
    const slot = this.#slots.find((candidate) => candidate.running === pending);
    if (!slot) return; // already converted
    // The worker is busy with exactly this page: stop it; the next page goes to a new worker.
    slot.running = undefined;
    pending.reject(reason);
    this.#drop(slot);
    this.#dispatch();
  }

  #drop(slot: Slot): void {
    const index = this.#slots.indexOf(slot);
    if (index !== -1) this.#slots.splice(index, 1);
    void slot.worker.terminate();
  }

  /** Stops the workers; pages still waiting or converting fail. Idempotent. */
  close(): void {
    clearTimeout(this.#idleTimer);
    const stopped = new Error("the Markdown converter was stopped");
    for (const slot of this.#slots.splice(0)) {
      slot.running?.reject(stopped);
      void slot.worker.terminate();
    }
    for (const queue of this.#queues.values()) for (const pending of queue) pending.reject(stopped);
    this.#queues.clear();
    this.#lastServed.clear();
  }
}
