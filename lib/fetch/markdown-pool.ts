// HTML → Markdown off the event loop. Parsing, Readability and turndown are synchronous (about
// 2 s per MB of markup), and the fetch tool is shared by every session: on the main thread one
// large page would freeze every user's socket. One worker converts pages in turn; a conversion
// whose fetch is cancelled or past its deadline while it runs stops the worker, and the pages
// waiting behind it go to a fresh one.
import { Worker } from "node:worker_threads";
import type { ConvertReply, ConvertRequest } from "./markdown-worker.ts";

interface Pending {
  request: ConvertRequest;
  resolve: (markdown: string) => void;
  reject: (error: Error) => void;
}

/** A worker with nothing to do for this long is stopped; the next page starts one again. */
const IDLE_MS = 30_000;

export class MarkdownConverter {
  #worker: Worker | undefined;
  /** In the order they were sent: the first one is the one the worker is converting. */
  readonly #pending: Pending[] = [];
  #nextId = 1;
  #idleTimer: NodeJS.Timeout | undefined;

  convert(html: string, url: string, signal: AbortSignal): Promise<string> {
    signal.throwIfAborted();
    return new Promise((resolve, reject) => {
      const pending: Pending = { request: { id: this.#nextId++, html, url }, resolve, reject };
      this.#pending.push(pending);
      this.#send(pending);
      signal.addEventListener(
        "abort",
        () => {
          const index = this.#pending.indexOf(pending);
          if (index === -1) return;
          this.#pending.splice(index, 1);
          reject(signal.reason instanceof Error ? signal.reason : new Error("the conversion was cancelled"));
          // The worker is busy with exactly this page: stop it; the others go to a new worker.
          if (index === 0) this.#restart();
        },
        { once: true },
      );
    });
  }

  #send(pending: Pending): void {
    clearTimeout(this.#idleTimer);
    this.#ensureWorker().postMessage(pending.request);
  }

  #ensureWorker(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(new URL("./markdown-worker.mjs", import.meta.url));
    worker.unref(); // never what keeps the process alive
    worker.on("message", (reply: ConvertReply) => {
      const index = this.#pending.findIndex((pending) => pending.request.id === reply.id);
      if (index === -1) return; // cancelled while it was converted
      const [pending] = this.#pending.splice(index, 1);
      if ("markdown" in reply) pending?.resolve(reply.markdown);
      else pending?.reject(new Error(`the page could not be converted to Markdown: ${reply.error}`));
      if (this.#pending.length === 0) this.#idleTimer = setTimeout(() => this.close(), IDLE_MS).unref();
    });
    worker.on("error", (error) => {
      // The worker died (out of memory on a hostile page, say): fail the page it had, go on.
      this.#pending.shift()?.reject(new Error(`the page could not be converted to Markdown: ${error.message}`));
      this.#restart();
    });
    this.#worker = worker;
    return worker;
  }

  #restart(): void {
    void this.#worker?.terminate();
    this.#worker = undefined;
    for (const pending of this.#pending) this.#send(pending);
  }

  /** Stops the worker; pages still waiting fail. Idempotent. */
  close(): void {
    clearTimeout(this.#idleTimer);
    void this.#worker?.terminate();
    this.#worker = undefined;
    for (const pending of this.#pending.splice(0)) pending.reject(new Error("the Markdown converter was stopped"));
  }
}
