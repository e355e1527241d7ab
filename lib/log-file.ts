// The log file: owner-only, and resilient. A write that fails (a full disk, a file that went
// away) is reported once on the console; the lines of the outage are counted, not queued, and
// the file is opened again at most once per `retryMs` until writing works again — then the
// console hears that too, and the file gets a line saying how many lines were lost.
import { chmodSync, createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import path from "node:path";

export interface LogFileOptions {
  /** Where failures and recoveries are reported (the console). */
  report: (text: string) => void;
  /** Least time between two attempts to open the file again after a failure. */
  retryMs?: number;
}

export class LogFile {
  readonly path: string;
  readonly #report: (text: string) => void;
  readonly #retryMs: number;
  #stream: WriteStream | undefined;
  /** Set while writing fails: since when, and how many lines were dropped. */
  #outage: { since: number; dropped: number; lastTry: number } | undefined;
  #closed = false;

  constructor(filePath: string, options: LogFileOptions) {
    this.path = filePath;
    this.#report = options.report;
    this.#retryMs = options.retryMs ?? 1000;
    // Logs hold user ids, tool names and errors: readable by the owner only, whatever the umask.
    mkdirSync(path.dirname(filePath), { recursive: true, mode: 0o700 });
    this.#open();
  }

  write(line: string): void {
    if (this.#closed) return;
    if (this.#outage && !this.#stream) {
      const now = Date.now();
      if (now - this.#outage.lastTry < this.#retryMs) {
        this.#outage.dropped++;
        return;
      }
      this.#outage.lastTry = now;
      const dropped = this.#outage.dropped;
      this.#open()?.write(
        `${JSON.stringify({ timestamp: new Date().toISOString(), level: "warn", event: "log_resumed", dropped_lines: dropped })}\n`,
      );
    }
    const stream = this.#stream;
    stream?.write(line, (error) => {
      if (error || !this.#outage || stream !== this.#stream) return;
      // The first line written since the outage made it to the file: logging is back.
      this.#report(`log file ${this.path} is writable again; ${this.#outage.dropped} line(s) were lost while it was not\n`);
      this.#outage = undefined;
    });
  }

  #open(): WriteStream | undefined {
    let stream: WriteStream;
    try {
      stream = createWriteStream(this.path, { flags: "a", mode: 0o600 });
    } catch (error) {
      this.#fail(error);
      return undefined;
    }
    stream.on("open", () => {
      // An existing file keeps its old mode on open: make it owner-only too.
      try {
        chmodSync(this.path, 0o600);
      } catch {
        // A special file (/dev/full in a test, a pipe) may refuse; writing still works or fails on its own.
      }
    });
    stream.on("error", (error) => {
      if (stream === this.#stream) this.#fail(error);
      stream.destroy();
    });
    this.#stream = stream;
    return stream;
  }

  #fail(error: unknown): void {
    this.#stream = undefined;
    if (this.#outage) {
      // Still failing after a retry: the console already knows.
      this.#outage.dropped++;
      return;
    }
    const now = Date.now();
    this.#outage = { since: now, dropped: 1, lastTry: now };
    const message = error instanceof Error ? error.message : String(error);
    this.#report(
      `log file error: ${message}; lines are dropped until ${this.path} can be written again (retried every ${this.#retryMs} ms)\n`,
    );
  }

  close(): Promise<void> {
    this.#closed = true;
    const stream = this.#stream;
    this.#stream = undefined;
    if (!stream) return Promise.resolve();
    return new Promise((resolve) => {
      stream.once("error", () => resolve());
      stream.end(() => resolve());
    });
  }
}
