// Raw HTTP and WebSocket for hardening tests: requests with any Host/Origin header, a WebSocket
// handshake done by hand on a TCP socket, and client frames built byte by byte (bad ones too).
import { randomBytes } from "node:crypto";
import http from "node:http";
import net from "node:net";

export interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: Record<string, unknown> | undefined;
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One HTTP request with exactly the headers given (a `host` header replaces Node's own).
 * An upgrade that succeeds resolves with status 101 and the socket destroyed.
 */
export function rawRequest(
  baseUrl: string,
  pathname: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<RawAnswer> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: url.hostname,
      port: url.port,
      path: pathname,
      method: options.method ?? "GET",
      headers: options.headers ?? {},
      agent: false,
    });
    req.on("error", reject);
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, headers: res.headers, text: "", json: undefined });
    });
    req.on("response", (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: parseJson(text) }));
      res.on("error", reject);
    });
    req.end(options.body);
  });
}

/** The headers of a well-formed WebSocket upgrade, to be changed by a test. */
export function upgradeHeaders(hostHeader: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    host: hostHeader,
    connection: "Upgrade",
    upgrade: "websocket",
    "sec-websocket-key": randomBytes(16).toString("base64"),
    "sec-websocket-version": "13",
    ...extra,
  };
}

/** A client frame, built by hand. Defaults: FIN, masked, text. */
export function buildFrame(options: {
  opcode?: number;
  payload?: Buffer | string;
  fin?: boolean;
  rsv1?: boolean;
  mask?: boolean;
  /** Length to declare in the header instead of the payload's (the payload is still appended). */
  declaredLength?: number;
}): Buffer {
  const payload = typeof options.payload === "string" ? Buffer.from(options.payload) : (options.payload ?? Buffer.alloc(0));
  const opcode = options.opcode ?? 0x1;
  const fin = options.fin ?? true;
  const mask = options.mask ?? true;
  const length = options.declaredLength ?? payload.length;
  const head: number[] = [(fin ? 0x80 : 0) | (options.rsv1 ? 0x40 : 0) | (opcode & 0x0f)];
  const maskBit = mask ? 0x80 : 0;
  let extended: Buffer;
  if (length < 126) {
    head.push(maskBit | length);
    extended = Buffer.alloc(0);
  } else if (length < 0x10000) {
    head.push(maskBit | 126);
    extended = Buffer.alloc(2);
    extended.writeUInt16BE(length);
  } else {
    head.push(maskBit | 127);
    extended = Buffer.alloc(8);
    extended.writeBigUInt64BE(BigInt(length));
  }
  if (!mask) return Buffer.concat([Buffer.from(head), extended, payload]);
  const key = randomBytes(4);
  const masked = Buffer.from(payload);
  for (let i = 0; i < masked.length; i++) masked[i] = (masked[i] ?? 0) ^ (key[i % 4] ?? 0);
  return Buffer.concat([Buffer.from(head), extended, key, masked]);
}

export interface ServerWsFrame {
  opcode: number;
  payload: Buffer;
}

/** A WebSocket client on a bare TCP socket: the handshake and every frame are ours to write. */
export class RawWebSocket {
  readonly socket: net.Socket;
  readonly responseHead: string;
  readonly status: number;
  /** Every frame the server sent, in order (pings included). */
  readonly frames: ServerWsFrame[] = [];
  readonly ended: Promise<void>;
  #buffer: Buffer;
  #wake: (() => void)[] = [];

  constructor(socket: net.Socket, responseHead: string, rest: Buffer) {
    this.socket = socket;
    this.responseHead = responseHead;
    this.status = Number(/^HTTP\/1\.1 (\d{3})/.exec(responseHead)?.[1] ?? 0);
    this.#buffer = rest;
    this.ended = new Promise((resolve) => socket.once("close", () => resolve()));
    void this.ended.then(() => this.#notify());
    socket.on("data", (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#parse();
    });
    socket.on("error", () => undefined);
    this.#parse();
  }

  #notify(): void {
    const waiters = this.#wake;
    this.#wake = [];
    for (const wake of waiters) wake();
  }

  #parse(): void {
    for (;;) {
      const buf = this.#buffer;
      if (buf.length < 2) break;
      const opcode = (buf[0] ?? 0) & 0x0f;
      let length = (buf[1] ?? 0) & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buf.length < 4) break;
        length = buf.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (buf.length < 10) break;
        length = Number(buf.readBigUInt64BE(2));
        offset = 10;
      }
      if (buf.length < offset + length) break;
      this.frames.push({ opcode, payload: buf.subarray(offset, offset + length) });
      this.#buffer = buf.subarray(offset + length);
    }
    this.#notify();
  }

  /** Waits until `predicate` holds over the frames so far, or the socket is gone. */
  async waitFor(predicate: () => boolean, timeoutMs = 10000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (this.socket.destroyed) return;
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`raw socket: condition not met within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.#wake.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Text frames from the server, parsed as JSON. */
  get messages(): Record<string, unknown>[] {
    return this.frames
      .filter((frame) => frame.opcode === 0x1)
      .map((frame) => JSON.parse(frame.payload.toString("utf8")) as Record<string, unknown>);
  }

  /** The server's close frame: its code and reason; code 1006 if the connection ended without one. */
  async closeFrame(timeoutMs = 10000): Promise<{ code: number; reason: string }> {
    const find = () => this.frames.find((frame) => frame.opcode === 0x8);
    await this.waitFor(() => find() !== undefined, timeoutMs);
    const close = find();
    if (!close) return { code: 1006, reason: "" };
    return { code: close.payload.length >= 2 ? close.payload.readUInt16BE(0) : 1005, reason: close.payload.subarray(2).toString("utf8") };
  }

  write(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function requestText(method: string, pathname: string, headers: Record<string, string>): string {
  const lines = [`${method} ${pathname} HTTP/1.1`, ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`)];
  return `${lines.join("\r\n")}\r\n\r\n`;
}

/**
 * Opens a TCP socket and sends an upgrade request (by default a valid one); resolves once the
 * server switched protocols. Any other answer rejects with the answer's head.
 */
export function rawHandshake(baseUrl: string, pathname: string, options: { headers?: Record<string, string> } = {}): Promise<RawWebSocket> {
  const url = new URL(baseUrl);
  const headers = options.headers ?? upgradeHeaders(url.host);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname);
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf("\r\n\r\n");
      if (end === -1) return;
      socket.off("data", onData);
      socket.off("error", reject);
      const raw = new RawWebSocket(socket, received.subarray(0, end).toString("latin1"), received.subarray(end + 4));
      if (raw.status === 101) return resolve(raw);
      socket.destroy();
      reject(new Error(`upgrade refused: ${raw.responseHead}`));
    };
    socket.on("data", onData);
    socket.once("error", reject);
    socket.once("connect", () => socket.write(requestText("GET", pathname, headers)));
  });
}

export interface RawExchange {
  /** Everything the server wrote before it closed the connection. */
  text: string;
  status: number;
  /** The body parsed as JSON, when it is JSON. */
  json: Record<string, unknown> | undefined;
  /** Milliseconds from connecting until the server closed the connection. */
  closedAfterMs: number;
}

/**
 * Writes `request` (anything: a partial request, garbage, an upgrade by hand) on a fresh TCP
 * socket and resolves when the server closes the connection; rejects if it has not within
 * `timeoutMs` (the socket is then destroyed).
 */
export function rawExchange(baseUrl: string, request: string | Buffer, timeoutMs = 10000): Promise<RawExchange> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect(Number(url.port), url.hostname);
    let text = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server did not close the connection within ${timeoutMs} ms (got ${JSON.stringify(text.slice(0, 300))})`));
    }, timeoutMs);
    socket.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
    socket.on("error", () => undefined);
    // The server ending its side is what counts; a half-open socket would keep "close" waiting.
    socket.once("end", () => socket.destroy());
    socket.once("close", () => {
      clearTimeout(timer);
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0);
      const bodyStart = text.indexOf("\r\n\r\n");
      resolve({
        text,
        status,
        json: bodyStart === -1 ? undefined : parseJson(text.slice(bodyStart + 4)),
        closedAfterMs: Date.now() - started,
      });
    });
    socket.once("connect", () => socket.write(request));
  });
}

/** An upgrade request as text, for rawExchange. */
export function upgradeRequest(method: string, pathname: string, headers: Record<string, string>): string {
  return requestText(method, pathname, headers);
}
