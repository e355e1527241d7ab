// The socket: one WebSocket per run, its frames read in order (with a deadline for scripts), its
// refusals and drops turned into ClientErrors that say why, and the welcome that opens a session.
import type { IncomingMessage } from "node:http";
import WebSocket, { type RawData } from "ws";
import type { WelcomeFrame } from "../lib/protocol.ts";
import { classifyFrame, isRecord, isString, type Incoming, type OutgoingFrame } from "./frames.ts";
import { ClientError, EXIT_CONNECTION, type ClientOptions, type SocketTarget } from "./options.ts";

type Received = { kind: "frame"; data: unknown; incoming: Incoming } | { kind: "closed"; reason: string };

/** How long a polite close may take before the socket is cut. */
const CLOSE_GRACE_MS = 1000;
const MAX_REFUSAL_BODY = 64 * 1024;

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  return Buffer.from(data instanceof ArrayBuffer ? new Uint8Array(data) : data).toString("utf8");
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The body of a refused upgrade, capped: the server's JSON error says why it refused. */
function readBody(res: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let body = "";
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => {
      if (body.length < MAX_REFUSAL_BODY) body += chunk;
    });
    res.on("end", () => resolve(body));
    res.on("error", () => resolve(body));
    res.on("close", () => resolve(body));
  });
}

function refusalText(res: IncomingMessage, body: string): string {
  const status = `HTTP ${res.statusCode ?? "?"}${res.statusMessage ? ` ${res.statusMessage}` : ""}`;
  const parsed = parseJson(body);
  if (isRecord(parsed) && isString(parsed.error)) return `${status}: ${parsed.error}`;
  const text = body.trim().slice(0, 300);
  return text ? `${status}: ${text}` : status;
}

/**
 * One WebSocket with its frames in an in-order buffer: scripting reads them one by one with a
 * deadline, the interactive view reads them as they come. A drop is a `closed` entry, so every
 * reader sees it in order after the frames that came before it.
 */
export class Link {
  readonly #ws: WebSocket;
  readonly #display: string;
  readonly #buffer: Received[] = [];
  #wake: (() => void) | undefined;
  #lastError: string | undefined;
  #closing = false;
  readonly opened: Promise<void>;
  readonly closed: Promise<string>;

  constructor(target: SocketTarget, token: string | undefined, timeoutMs: number) {
    this.#display = target.display;
    const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
    this.#ws = new WebSocket(target.url, { headers, handshakeTimeout: timeoutMs, perMessageDeflate: false });
    const ws = this.#ws;
    this.opened = new Promise((resolve, reject) => {
      const fail = (cause: string) => reject(new ClientError(`cannot connect to ${this.#display}: ${cause}`, EXIT_CONNECTION));
      ws.once("open", () => resolve());
      // Registering this listener makes ws hand us the refusal instead of a bare error, so the
      // message can carry the server's own reason (e.g. an invalid user id).
      ws.once("unexpected-response", (_req, res) => {
        void readBody(res).then((body) => {
          fail(refusalText(res, body));
          ws.terminate();
        });
      });
      ws.on("error", (error) => {
        this.#lastError = error.message;
        if (ws.readyState !== WebSocket.OPEN) fail(error.message);
      });
    });
    // Settled once; a rejection nobody awaits yet must not crash the process as unhandled.
    this.opened.catch(() => undefined);
    this.closed = new Promise((resolve) => {
      ws.on("close", (code, reason) => {
        const why = this.#closeReason(code, reason.toString());
        this.#push({ kind: "closed", reason: why });
        resolve(why);
      });
    });
    ws.on("message", (data, isBinary) => {
      const text = isBinary ? "" : rawText(data);
      const parsed = parseJson(text);
      this.#push({ kind: "frame", data: parsed, incoming: classifyFrame(parsed) });
    });
  }

  #closeReason(code: number, reason: string): string {
    if (this.#closing) return "closed by the client";
    if (code === 1006 || code === 1005) {
      return `connection to ${this.#display} lost: ${this.#lastError ?? "the connection was closed without a close frame"}`;
    }
    return `connection to ${this.#display} closed by the server: ${code}${reason ? ` ${reason}` : ""}`;
  }

  #push(received: Received): void {
    this.#buffer.push(received);
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /**
   * The next frame (or the close), or "timeout" once `deadline` (ms since epoch) has passed.
   * One reader at a time: scripting reads in sequence, the interactive view has one pump.
   */
  async next(deadline = Infinity): Promise<Received | "timeout"> {
    for (;;) {
      const received = this.#buffer.shift();
      if (received) {
        // A close stays at the head so every later read also sees it.
        if (received.kind === "closed") this.#buffer.unshift(received);
        return received;
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) return "timeout";
      await new Promise<void>((resolve) => {
        const timer = Number.isFinite(remaining) ? setTimeout(resolve, remaining) : undefined;
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Frames already received and not read yet (the close excluded). */
  drain(): Received[] {
    const frames = this.#buffer.filter((received) => received.kind === "frame");
    this.#buffer.length = 0;
    return frames;
  }

  get open(): boolean {
    return this.#ws.readyState === WebSocket.OPEN;
  }

  /** Resolves once the frame is handed to the OS, so a cancel is out before the program exits. */
  send(frame: OutgoingFrame): Promise<void> {
    if (!this.open) return Promise.reject(new ClientError(`connection to ${this.#display} is closed`, EXIT_CONNECTION));
    return new Promise((resolve, reject) => {
      this.#ws.send(JSON.stringify(frame), (error) => {
        if (error) reject(new ClientError(`connection to ${this.#display} lost: ${error.message}`, EXIT_CONNECTION));
        else resolve();
      });
    });
  }

  /** A polite close; the socket is cut if the server does not answer the close quickly. */
  async close(): Promise<void> {
    this.#closing = true;
    if (this.#ws.readyState === WebSocket.CLOSED) return;
    if (this.#ws.readyState === WebSocket.CONNECTING) {
      this.#ws.terminate();
      return;
    }
    this.#ws.close(1000);
    const timer = setTimeout(() => this.#ws.terminate(), CLOSE_GRACE_MS);
    await this.closed;
    clearTimeout(timer);
  }
}

export interface Connection {
  link: Link;
  welcome: WelcomeFrame;
  /** The server speaks the streaming extension; otherwise one seed frame answers one message. */
  streaming: boolean;
  /** The welcome as received, for --json. */
  welcomeData: unknown;
}

export async function connect(options: ClientOptions): Promise<Connection> {
  const link = new Link(options.target, options.token, options.timeoutMs);
  await link.opened;
  const first = await link.next(Date.now() + options.timeoutMs);
  const noWelcome = (why: string) => new ClientError(`no welcome from ${options.target.display}: ${why}`, EXIT_CONNECTION);
  if (first === "timeout") {
    await link.close();
    throw noWelcome(`nothing within ${options.timeoutMs / 1000} s`);
  }
  if (first.kind === "closed") throw new ClientError(first.reason, EXIT_CONNECTION);
  const incoming = first.incoming;
  // A server that ignores ?stream=1 (the original Python one) sends the seed welcome: same
  // fields as an answer, no `type`.
  if (incoming.kind === "welcome") return { link, welcome: incoming.frame, streaming: incoming.streaming, welcomeData: first.data };
  if (incoming.kind === "answer" && incoming.turnId === undefined) {
    return { link, welcome: incoming.frame, streaming: false, welcomeData: first.data };
  }
  await link.close();
  throw noWelcome(`the first frame was ${JSON.stringify(first.data)}`);
}
