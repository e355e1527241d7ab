// HTML → Markdown off the event loop, fair between users. Parsing, Readability and turndown are
// synchronous (about 2 s per MB of markup), and the fetch tool is shared by every session: on the
// main thread one large page would freeze every user's socket, and in one arrival-order queue a
// few users fetching large pages would make everyone else's fetches time out. So each owner (a
// user) has a queue, the queues are served round-robin by a few workers, and markup past
// `maxInputChars` is cut before it is converted. A conversion whose fetch is cancelled or past its
// deadline while it runs stops its worker; the next page starts a fresh one. Each page also has
// its own time on a worker (`budgetMs`, apart from its wait in the queue and from the fetch's
// deadline) and a nesting cap: past either, the model gets the page's text instead of Markdown,
// so one crafted page holds a worker for at most its budget.
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { CONFIG_FILE } from "../config.ts";
import type { ConvertReply, ConvertRequest } from "./markdown-worker.ts";
import { htmlToRawText } from "./raw-text.ts";

interface Pending {
  owner: string;
  request: ConvertRequest;
  resolve: (markdown: string) => void;
  reject: (error: Error) => void;
  /** Runs out the page's own budget while it converts. */
  budget?: NodeJS.Timeout;
}

interface Slot {
  worker: Worker;
  running: Pending | undefined;
  /** Loaded and able to convert: a page's budget runs from then on. */
  ready: boolean;
}

export interface MarkdownConverterOptions {
  /** Worker threads; 0 picks one per core but one, at least one. */
  workers: number;
  /** Markup longer than this (characters) is cut before conversion, with a note in the result. */
  maxInputChars: number;
  /** One page's time on a worker (convert_budget_seconds); past it the worker is stopped and the page's text returned. */
  budgetMs?: number;
  /** Markup nested deeper (max_convert_depth) is given as text, not converted. */
  maxDepth?: number;
}

/** Text instead of Markdown, with a note saying why and which key governs it. */
function withNote(why: string, text: string): string {
  return `<error>The page was not converted to Markdown: ${why}. Here is its text instead.</error>\n\n${text}`;
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
  readonly #budgetMs: number;
  readonly #maxDepth: number;
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
    this.#budgetMs = options.budgetMs ?? 5000;
    this.#maxDepth = options.maxDepth ?? 256;
  }

  /** Converts `html` for `owner`; pages of different owners take turns. */
  convert(html: string, url: string, signal: AbortSignal, owner = ""): Promise<string> {
    signal.throwIfAborted();
    // Cut here, before it is copied to a worker: the caller says so to the model (see fetchForModel).
    const input = html.length > this.#maxInputChars ? html.slice(0, this.#maxInputChars) : html;
    return new Promise<string>((resolve, reject) => {
      const pending: Pending = { owner, request: { id: this.#nextId++, html: input, url, maxDepth: this.#maxDepth }, resolve, reject };
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
      // A worker still loading gets its page once it says it is ready.
      if (slot.ready) this.#start(slot, next);
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
    const slot: Slot = { worker, running: undefined, ready: false };
    worker.on("message", (reply: ConvertReply | { ready: true }) => {
      if ("ready" in reply) {
        slot.ready = true;
        if (slot.running) this.#start(slot, slot.running);
        return;
      }
      const pending = slot.running;
      if (!pending || pending.request.id !== reply.id) return;
      slot.running = undefined;
      clearTimeout(pending.budget);
      if ("markdown" in reply) pending.resolve(reply.markdown);
      else if ("tooDeep" in reply)
        pending.resolve(
          withNote(`its elements nest deeper than ${this.#maxDepth} (max_convert_depth of the fetch server in ${CONFIG_FILE})`, reply.text),
        );
      else pending.reject(new Error(`the page could not be converted to Markdown: ${reply.error}`));
      this.#dispatch();
    });
    worker.on("error", (error) => {
      // The worker died (out of memory on a hostile page, say): fail the page it had, go on.
      clearTimeout(slot.running?.budget);
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
    clearTimeout(pending.budget);
    pending.reject(reason);
    this.#drop(slot);
    this.#dispatch();
  }

  /** Hands the page to its (ready) worker; its budget runs from now. */
  #start(slot: Slot, pending: Pending): void {
    pending.budget = setTimeout(() => this.#overBudget(slot, pending), this.#budgetMs).unref();
    slot.worker.postMessage(pending.request);
  }

  /** The page outlived its budget on the worker: the worker is stopped, the page given as text. */
  #overBudget(slot: Slot, pending: Pending): void {
    if (slot.running !== pending) return;
    slot.running = undefined;
    this.#drop(slot);
    const seconds = this.#budgetMs / 1000;
    const why = `it took longer than ${seconds} s to convert (convert_budget_seconds of the fetch server in ${CONFIG_FILE})`;
    pending.resolve(withNote(why, htmlToRawText(pending.request.html)));
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
      clearTimeout(slot.running?.budget);
      slot.running?.reject(stopped);
      void slot.worker.terminate();
    }
    for (const queue of this.#queues.values()) for (const pending of queue) pending.reject(stopped);
    this.#queues.clear();
    this.#lastServed.clear();
  }
}
