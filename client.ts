// The command-line client: an interactive chat when stdin is a terminal, otherwise a scripting
// tool (-m messages or stdin lines) whose stdout carries only the answers. It speaks the
// streaming extension of the protocol and falls back to seed frames for servers that ignore it.
import { randomUUID } from "node:crypto";
import path from "node:path";
import readline from "node:readline";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type { IncomingMessage } from "node:http";
import WebSocket, { type RawData } from "ws";
import {
  isValidUserId,
  USER_ID_RULE,
  type AnswerFrame,
  type CancelledFrame,
  type DeltaFrame,
  type ErrorFrame,
  type HistoryFrame,
  type HistoryItem,
  type ToolEndFrame,
  type ToolStartFrame,
  type TurnStartFrame,
  type TurnStatus,
  type WelcomeFrame,
} from "./protocol.ts";

// ---- exit codes and errors ---------------------------------------------------------------------

export const EXIT_OK = 0;
/** At least one message got an error (or a cancel) instead of an answer. */
export const EXIT_TURN_ERROR = 1;
export const EXIT_USAGE = 2;
/** The server could not be reached, refused the upgrade, or the connection dropped. */
export const EXIT_CONNECTION = 3;
export const EXIT_TIMEOUT = 4;

/** A failure that ends the program with a given exit code; its message goes to stderr. */
export class ClientError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.name = "ClientError";
    this.exitCode = exitCode;
  }
}

export class UsageError extends ClientError {
  constructor(message: string) {
    super(message, EXIT_USAGE);
    this.name = "UsageError";
  }
}

// ---- options -----------------------------------------------------------------------------------

const PROGRAM = "mcp-agent-client";
const DEFAULT_URL = "ws://127.0.0.1:8000";
const DEFAULT_TIMEOUT_SECONDS = 300;
/** setTimeout's limit; a longer wait would fire at once. */
const MAX_TIMEOUT_SECONDS = Math.floor(2 ** 31 / 1000) - 1;

export const USAGE = `Usage: ${PROGRAM} [options]        (or: npm run client -- [options])

Chat with the MCP agent server. With a terminal on stdin it is interactive; otherwise each
-m message, or each non-empty line of stdin, is sent in turn and each answer printed to stdout.

Options:
  --url URL           server address, ws://, wss://, http:// or https://; /ws/<user> is
                      appended (default: ${DEFAULT_URL})
  --user ID           user id (default: $USER, else test_user)
  -m, --message TEXT  send TEXT and print the answer; repeat to send several, one after another
  --json              print every frame received as one JSON line instead of the answers
  --timeout SECONDS   how long to wait for each answer (default: ${DEFAULT_TIMEOUT_SECONDS})
  --token TOKEN       send "Authorization: Bearer TOKEN" (default: $MCP_AGENT_TOKEN)
  -h, --help          show this help

Exit codes: 0 every message answered, 1 an error came back, 2 usage error,
            3 cannot connect or connection lost, 4 timed out waiting for an answer`;

export interface SocketTarget {
  /** What the client connects to (with ?stream=1). */
  url: string;
  /** What messages name: the socket URL without the stream flag or credentials. */
  display: string;
}

export interface ClientOptions {
  target: SocketTarget;
  user: string;
  timeoutMs: number;
  token: string | undefined;
  json: boolean;
  messages: string[];
  help: boolean;
}

const SCHEMES: Record<string, string> = { "ws:": "ws:", "wss:": "wss:", "http:": "ws:", "https:": "wss:" };

/** The socket URL for a user: the base's scheme made ws(s), `/ws/<user>` appended, `stream=1` set. */
export function socketTarget(base: string, user: string): SocketTarget {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new UsageError(`--url must be a ws://, wss://, http:// or https:// URL, got "${base}"`);
  }
  const scheme = SCHEMES[url.protocol];
  if (!scheme) throw new UsageError(`--url must start with ws://, wss://, http:// or https://, got "${base}"`);
  url.protocol = scheme;
  url.hash = "";
  // A base with a path (a reverse proxy under /agent) keeps it: /agent/ws/<user>.
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/ws/${encodeURIComponent(user)}`;
  const shown = new URL(url.href);
  shown.username = "";
  shown.password = "";
  url.searchParams.set("stream", "1");
  return { url: url.href, display: shown.href };
}

function parseTimeout(text: string): number {
  const seconds = Number(text);
  if (text.trim() === "" || !Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_TIMEOUT_SECONDS) {
    throw new UsageError(`--timeout must be a number of seconds above 0 and at most ${MAX_TIMEOUT_SECONDS}, got "${text}"`);
  }
  return Math.round(seconds * 1000);
}

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): ClientOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        url: { type: "string" },
        user: { type: "string" },
        message: { type: "string", short: "m", multiple: true },
        json: { type: "boolean" },
        timeout: { type: "string" },
        token: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const user = values.user ?? (env.USER || "test_user");
  if (!isValidUserId(user)) throw new UsageError(`invalid user id "${user}": ${USER_ID_RULE}`);
  const messages = values.message ?? [];
  // The server silently ignores blank messages, so waiting for their answer would never end.
  if (messages.some((message) => message.trim() === "")) throw new UsageError("--message must not be empty");
  if (values.token !== undefined && values.token === "") throw new UsageError("--token must not be empty");
  return {
    target: socketTarget(values.url ?? DEFAULT_URL, user),
    user,
    timeoutMs: parseTimeout(values.timeout ?? String(DEFAULT_TIMEOUT_SECONDS)),
    token: values.token ?? (env.MCP_AGENT_TOKEN || undefined),
    json: values.json ?? false,
    messages,
    help: values.help ?? false,
  };
}

// ---- frames from the server --------------------------------------------------------------------
// Nothing from the socket is trusted: each frame is checked field by field and rebuilt as the
// protocol type, so the rest of the client works with typed values only.

export type Incoming =
  | { kind: "welcome"; frame: WelcomeFrame; streaming: boolean }
  /** `clientId`: the client_id the message was sent with, when the server echoes it. */
  | { kind: "turn_start"; frame: TurnStartFrame; clientId: string | undefined }
  | { kind: "delta"; frame: DeltaFrame }
  | { kind: "tool_start"; frame: ToolStartFrame }
  | { kind: "tool_end"; frame: ToolEndFrame }
  /** `turnId` is undefined for a seed answer, which also has the shape of a seed welcome. */
  | { kind: "answer"; frame: AnswerFrame; turnId: string | undefined }
  /** `turnId` is undefined for an error outside a turn, or any error on a seed socket. */
  | { kind: "error"; frame: ErrorFrame; turnId: string | undefined; clientId: string | undefined }
  | { kind: "cancelled"; frame: CancelledFrame }
  | { kind: "history"; frame: HistoryFrame }
  | { kind: "other" };

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const isString = (value: unknown): value is string => typeof value === "string";
const stringOr = (value: unknown, fallback: string): string => (isString(value) ? value : fallback);
const optionalString = (value: unknown): string | undefined => (isString(value) ? value : undefined);

const TURN_STATUSES: readonly TurnStatus[] = ["running", "ok", "error", "cancelled", "interrupted"];

function turnStatus(value: unknown): TurnStatus {
  return TURN_STATUSES.find((status) => status === value) ?? "ok";
}

/** The seed's message/user_id/session_id triple, shared by the welcome and answer frames. */
function seedMessage(data: Json): AnswerFrame | undefined {
  const { message, user_id: userId, session_id: sessionId } = data;
  if (!isString(message) || !isString(userId) || !isString(sessionId)) return undefined;
  return { message, user_id: userId, session_id: sessionId };
}

function historyItem(value: unknown): HistoryItem | undefined {
  if (!isRecord(value) || !isString(value.turn_id)) return undefined;
  const turnId = value.turn_id;
  if (value.role === "user" && isString(value.content)) {
    return { role: "user", turn_id: turnId, content: value.content, status: turnStatus(value.status) };
  }
  if (value.role === "assistant" && isString(value.content)) return { role: "assistant", turn_id: turnId, content: value.content };
  if (value.role === "tool" && isString(value.name)) {
    return {
      role: "tool",
      turn_id: turnId,
      call_id: stringOr(value.call_id, ""),
      name: value.name,
      server: stringOr(value.server, ""),
      tool: stringOr(value.tool, ""),
      arguments: value.arguments,
      ok: value.ok === true,
      preview: stringOr(value.preview, ""),
    };
  }
  return undefined;
}

function classifyTyped(type: string, data: Json): Incoming {
  const turnId = data.turn_id;
  switch (type) {
    case "welcome": {
      const seed = seedMessage(data);
      return seed ? { kind: "welcome", frame: seed, streaming: data.stream === true } : { kind: "other" };
    }
    case "turn_start":
      if (isString(turnId) && isString(data.input)) {
        return { kind: "turn_start", frame: { type, turn_id: turnId, input: data.input }, clientId: optionalString(data.client_id) };
      }
      break;
    case "delta":
      if (isString(turnId) && isString(data.text)) return { kind: "delta", frame: { type, turn_id: turnId, text: data.text } };
      break;
    case "tool_start":
      if (isString(turnId) && isString(data.call_id) && isString(data.name)) {
        const { call_id: callId, name } = data;
        const frame: ToolStartFrame = { type, turn_id: turnId, call_id: callId, name, server: stringOr(data.server, ""), tool: stringOr(data.tool, ""), arguments: data.arguments };
        return { kind: "tool_start", frame };
      }
      break;
    case "tool_end":
      if (isString(turnId) && isString(data.call_id) && typeof data.ok === "boolean") {
        const duration = typeof data.duration_ms === "number" ? data.duration_ms : 0;
        const frame: ToolEndFrame = { type, turn_id: turnId, call_id: data.call_id, ok: data.ok, preview: stringOr(data.preview, ""), duration_ms: duration };
        return { kind: "tool_end", frame };
      }
      break;
    case "answer": {
      const seed = seedMessage(data);
      if (seed && isString(turnId)) return { kind: "answer", frame: seed, turnId };
      break;
    }
    case "error":
      if (isString(data.error)) {
        return { kind: "error", frame: { error: data.error }, turnId: optionalString(turnId), clientId: optionalString(data.client_id) };
      }
      break;
    case "cancelled":
      if (isString(turnId)) return { kind: "cancelled", frame: { type, turn_id: turnId } };
      break;
    case "history":
      if (isString(data.user_id) && isString(data.session_id) && Array.isArray(data.items)) {
        const items = data.items.map(historyItem).filter((item): item is HistoryItem => item !== undefined);
        return { kind: "history", frame: { type, user_id: data.user_id, session_id: data.session_id, items } };
      }
      break;
  }
  return { kind: "other" };
}

export function classifyFrame(data: unknown): Incoming {
  if (!isRecord(data)) return { kind: "other" };
  if (isString(data.type)) return classifyTyped(data.type, data);
  // Seed frames have no `type`.
  if (isString(data.error)) return { kind: "error", frame: { error: data.error }, turnId: undefined, clientId: undefined };
  const seed = seedMessage(data);
  return seed ? { kind: "answer", frame: seed, turnId: undefined } : { kind: "other" };
}

// ---- the socket --------------------------------------------------------------------------------

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
class Link {
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
  send(value: unknown): Promise<void> {
    if (!this.open) return Promise.reject(new ClientError(`connection to ${this.#display} is closed`, EXIT_CONNECTION));
    return new Promise((resolve, reject) => {
      this.#ws.send(JSON.stringify(value), (error) => {
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

interface Connection {
  link: Link;
  welcome: WelcomeFrame;
  /** The server speaks the streaming extension; otherwise one seed frame answers one message. */
  streaming: boolean;
  /** The welcome as received, for --json. */
  welcomeData: unknown;
}

async function connect(options: ClientOptions): Promise<Connection> {
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

// ---- scripting ---------------------------------------------------------------------------------

type Outcome = { kind: "answer"; text: string } | { kind: "error"; text: string } | { kind: "cancelled" };

/** A chat message as sent: `clientId` goes out as `client_id` for the server to echo. */
interface Sent {
  text: string;
  clientId: string;
}

function chatFrame(sent: Sent): { message: string; client_id: string } {
  return { message: sent.text, client_id: sent.clientId };
}

/**
 * Is this turn_start the turn of our message? A streaming socket sees every turn of the user,
 * other tabs' too. Servers that echo `client_id` say so exactly; for the others it is the first
 * turn, after we sent, whose input is our text.
 */
function startsOwnTurn(start: { frame: TurnStartFrame; clientId: string | undefined }, sent: Sent): boolean {
  return start.clientId !== undefined ? start.clientId === sent.clientId : start.frame.input === sent.text;
}

/** Is this error the refusal of our message (before any turn of it started)? */
function refusesOwnMessage(error: { turnId: string | undefined; clientId: string | undefined }, sent: Sent): boolean {
  if (error.turnId !== undefined) return false;
  // Without a client_id, an error outside any turn can only be about a frame we sent.
  return error.clientId === undefined || error.clientId === sent.clientId;
}

/** Picks out the final frame of one message's turn. */
function outcomeMatcher(streaming: boolean, sent: Sent): { match(incoming: Incoming): Outcome | undefined; started(): boolean } {
  if (!streaming) {
    return {
      match: (incoming) => {
        if (incoming.kind === "answer") return { kind: "answer", text: incoming.frame.message };
        if (incoming.kind === "error") return { kind: "error", text: incoming.frame.error };
        return undefined;
      },
      started: () => true,
    };
  }
  let turnId: string | undefined;
  return {
    match: (incoming) => {
      if (turnId === undefined) {
        if (incoming.kind === "turn_start" && startsOwnTurn(incoming, sent)) turnId = incoming.frame.turn_id;
        else if (incoming.kind === "error" && refusesOwnMessage(incoming, sent)) return { kind: "error", text: incoming.frame.error };
        return undefined;
      }
      if (incoming.kind === "answer" && incoming.turnId === turnId) return { kind: "answer", text: incoming.frame.message };
      if (incoming.kind === "error" && incoming.turnId === turnId) return { kind: "error", text: incoming.frame.error };
      if (incoming.kind === "cancelled" && incoming.frame.turn_id === turnId) return { kind: "cancelled" };
      return undefined;
    },
    started: () => turnId !== undefined,
  };
}

interface Output {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

function printJson(out: NodeJS.WritableStream, data: unknown): void {
  out.write(`${JSON.stringify(data)}\n`);
}

function quoteMessage(message: string): string {
  const short = message.length > 60 ? `${message.slice(0, 60)}…` : message;
  return JSON.stringify(short);
}

async function ask(connection: Connection, message: string, options: ClientOptions, io: Output): Promise<Outcome> {
  const { link } = connection;
  const sent: Sent = { text: message, clientId: randomUUID() };
  await link.send(chatFrame(sent));
  const deadline = Date.now() + options.timeoutMs;
  const matcher = outcomeMatcher(connection.streaming, sent);
  for (;;) {
    const received = await link.next(deadline);
    if (received === "timeout") {
      // Only a turn known to be ours is cancelled: a cancel stops whatever turn of the user
      // runs, and while ours is still queued that would be another tab's.
      const cancel = matcher.started() || !connection.streaming;
      if (cancel) await link.send({ type: "cancel" }).catch(() => undefined);
      const what = cancel ? "cancelled it" : "it is still queued behind other turns";
      throw new ClientError(`no answer within ${options.timeoutMs / 1000} s to ${quoteMessage(message)}; ${what}`, EXIT_TIMEOUT);
    }
    if (received.kind === "closed") throw new ClientError(received.reason, EXIT_CONNECTION);
    if (options.json) printJson(io.stdout, received.data);
    const outcome = matcher.match(received.incoming);
    if (outcome) return outcome;
  }
}

/** The -m values, one after another. */
async function* givenMessages(messages: readonly string[]): AsyncGenerator<string, void> {
  yield* messages;
}

/** Each non-empty line of stdin, read as it arrives (so a slow producer is answered line by line). */
async function* stdinMessages(stdin: NodeJS.ReadableStream): AsyncGenerator<string, void> {
  for await (const line of readline.createInterface({ input: stdin, crlfDelay: Infinity })) {
    // Blank lines are skipped: the server ignores blank messages and would never answer.
    if (line.trim() !== "") yield line;
  }
}

// Resolves after pending I/O callbacks ran: long enough for a line already read to arrive.
const afterPendingIo = () => new Promise<"pending">((resolve) => setImmediate(() => resolve("pending")));

/**
 * The next line of stdin, or a ClientError if the connection drops while we wait for one. A line
 * (or the end of input) that is already there wins over a close that happened meanwhile.
 */
async function nextLine(source: AsyncIterator<string, void>, link: Link): Promise<string | undefined> {
  const next = source.next();
  const first = await Promise.race([next, link.closed]);
  if (typeof first === "string") {
    const settled = await Promise.race([next, afterPendingIo()]);
    if (settled === "pending") throw new ClientError(first, EXIT_CONNECTION);
    return settled.done ? undefined : settled.value;
  }
  return first.done ? undefined : first.value;
}

async function runScript(connection: Connection, options: ClientOptions, io: Output, stdin: NodeJS.ReadableStream): Promise<number> {
  const { link } = connection;
  if (options.json) printJson(io.stdout, connection.welcomeData);
  // -m messages need no race with the close: a send on a closed socket already fails.
  const fromStdin = options.messages.length === 0;
  const source = fromStdin ? stdinMessages(stdin) : givenMessages(options.messages);
  const read = async (): Promise<string | undefined> => {
    if (fromStdin) return nextLine(source, link);
    const next = await source.next();
    return next.done ? undefined : next.value;
  };
  let failed = false;
  try {
    for (let message = await read(); message !== undefined; message = await read()) {
      const outcome = await ask(connection, message, options, io);
      if (outcome.kind === "answer") {
        if (!options.json) io.stdout.write(`${outcome.text}\n`);
        continue;
      }
      // An error answers this message only: the rest still go out, the exit code records it.
      failed = true;
      const text = outcome.kind === "error" ? outcome.text : "the turn was cancelled";
      io.stderr.write(`✖ ${quoteMessage(message)}: ${text}\n`);
    }
  } finally {
    if (options.json) for (const received of link.drain()) if (received.kind === "frame") printJson(io.stdout, received.data);
    await link.close();
  }
  return failed ? EXIT_TURN_ERROR : EXIT_OK;
}

// ---- interactive -------------------------------------------------------------------------------

const STYLES = { dim: "2", bold: "1", red: "31", green: "32", yellow: "33", cyan: "36", magenta: "35" } as const;
type Style = keyof typeof STYLES;

/** https://no-color.org: colour only on a terminal, never when NO_COLOR is set (to anything but ""). */
export function colourWanted(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv): boolean {
  return stream.isTTY === true && !env.NO_COLOR;
}

export function clock(date = new Date()): string {
  const two = (n: number) => String(n).padStart(2, "0");
  return `[${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}]`;
}

/** Tool arguments on one line: compact JSON, cut so a long argument does not flood the view. */
export function formatArguments(value: unknown, max = 120): string {
  const text = (typeof value === "string" ? value : JSON.stringify(value) ?? "").replace(/\s+/g, " ");
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function firstLine(text: string, max = 100): string {
  const line = text.split("\n", 1)[0] ?? "";
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** Terminal output that knows whether the cursor is at the start of a line. */
class Screen {
  readonly #out: NodeJS.WriteStream;
  readonly #colour: boolean;
  atLineStart = true;

  constructor(out: NodeJS.WriteStream, colour: boolean) {
    this.#out = out;
    this.#colour = colour;
  }

  paint(style: Style, text: string): string {
    return this.#colour ? `\x1b[${STYLES[style]}m${text}\x1b[0m` : text;
  }

  stamp(): string {
    return this.paint("dim", clock());
  }

  write(text: string): void {
    if (!text) return;
    this.#out.write(text);
    this.atLineStart = text.endsWith("\n");
  }

  /** Ends a line that streamed text left open. */
  endLine(): void {
    if (!this.atLineStart) this.write("\n");
  }

  /** A whole line, starting a new one if streamed text left the cursor mid-line. */
  line(text: string): void {
    this.endLine();
    this.write(`${text}\n`);
  }

  /** Wipes the prompt line so output can take its place; readline redraws it later. */
  clearLine(): void {
    readline.cursorTo(this.#out, 0);
    readline.clearLine(this.#out, 0);
    this.atLineStart = true;
  }
}

const INTERACTIVE_HELP = `Commands:
  help         show this help
  /history     show the conversation so far
  /cancel      stop the running turn (also Ctrl+C)
  quit, exit   leave (also Ctrl+D, or Ctrl+C twice)
Anything else is sent to the agent.`;

/** Two Ctrl+C within this time quit even while a turn runs. */
const DOUBLE_INTERRUPT_MS = 1000;

interface OwnMessage extends Sent {
  turnId: string | undefined;
  timer: NodeJS.Timeout | undefined;
}

interface TurnView {
  turnId: string;
  /** Text streamed since the last tool line: an answer that was not streamed is printed whole. */
  streamed: string;
  /** The tool line left open (no newline yet) waiting for its result, if nothing came between. */
  openTool: string | undefined;
  tools: Map<string, { name: string; args: string }>;
}

class InteractiveChat {
  readonly #connection: Connection;
  readonly #options: ClientOptions;
  readonly #screen: Screen;
  readonly #rl: readline.Interface;
  readonly #own: OwnMessage[] = [];
  #turn: TurnView | undefined;
  #promptShown = false;
  #lastInterrupt = 0;
  /** After one Ctrl+C (a cancel, or a cleared line) the next one quits, as in the Node REPL; a line resets it. */
  #interruptArmed = false;
  #finish: ((code: number) => void) | undefined;
  #done = false;

  constructor(connection: Connection, options: ClientOptions, stdin: NodeJS.ReadStream, stdout: NodeJS.WriteStream, env: NodeJS.ProcessEnv) {
    this.#connection = connection;
    this.#options = options;
    this.#screen = new Screen(stdout, colourWanted(stdout, env));
    this.#rl = readline.createInterface({ input: stdin, output: stdout, prompt: "you> ", terminal: stdout.isTTY === true, historySize: 200 });
  }

  run(): Promise<number> {
    const done = new Promise<number>((resolve) => (this.#finish = resolve));
    this.#greet();
    this.#rl.on("line", (line) => void this.#onLine(line));
    this.#rl.on("SIGINT", () => void this.#onInterrupt());
    // Without a terminal on stdout readline is not in raw mode and Ctrl+C arrives as a signal.
    process.on("SIGINT", () => void this.#onInterrupt());
    this.#rl.on("close", () => void this.#quit(EXIT_OK));
    void this.#pump();
    this.#showPrompt();
    return done;
  }

  get #busy(): boolean {
    return this.#turn !== undefined || this.#own.length > 0;
  }

  #greet(): void {
    const { welcome, streaming } = this.#connection;
    this.#say(`${this.#screen.paint("green", "connected")} to ${this.#options.target.display} as ${welcome.user_id} (session ${welcome.session_id})`);
    if (!streaming) this.#say(this.#screen.paint("yellow", "this server does not stream: answers arrive whole; /cancel and /history are not available"));
    this.#screen.line(this.#screen.paint("dim", 'type "help" for commands'));
  }

  /** A timestamped line. */
  #say(text: string): void {
    this.#beforeOutput();
    this.#screen.line(`${this.#screen.stamp()} ${text}`);
  }

  #error(text: string): void {
    this.#say(this.#screen.paint("red", `✖ ${text}`));
  }

  #beforeOutput(): void {
    if (this.#promptShown) {
      this.#screen.clearLine();
      this.#promptShown = false;
    }
  }

  #showPrompt(): void {
    if (this.#done || this.#busy || this.#promptShown) return;
    this.#screen.endLine();
    this.#promptShown = true;
    // preserveCursor keeps whatever the user had typed while output was printed.
    this.#rl.prompt(true);
  }

  async #onLine(line: string): Promise<void> {
    this.#screen.atLineStart = true;
    this.#promptShown = false;
    this.#interruptArmed = false;
    const text = line.trim();
    switch (text) {
      case "":
        return this.#showPrompt();
      case "help":
      case "/help":
        this.#screen.line(INTERACTIVE_HELP);
        return this.#showPrompt();
      case "quit":
      case "exit":
      case "/quit":
      case "/exit":
        return this.#quit(EXIT_OK);
      case "/history":
        return this.#request({ type: "history" }, "history");
      case "/cancel":
        return this.#cancel();
    }
    if (text.startsWith("/")) {
      this.#error(`unknown command ${text.split(/\s/, 1)[0]}; type "help"`);
      return this.#showPrompt();
    }
    // The line as typed (not trimmed) is sent, so the turn_start input matches it exactly.
    const own: OwnMessage = { text: line, clientId: randomUUID(), turnId: undefined, timer: undefined };
    own.timer = setTimeout(() => void this.#onTimeout(own), this.#options.timeoutMs);
    this.#own.push(own);
    await this.#send(chatFrame(own));
  }

  async #send(frame: unknown): Promise<void> {
    try {
      await this.#connection.link.send(frame);
    } catch (error) {
      // The pump reports the close; a failed send only adds noise.
      if (!(error instanceof ClientError)) throw error;
    }
  }

  async #request(frame: unknown, what: string): Promise<void> {
    if (!this.#connection.streaming) {
      this.#error(`${what} is not available: this server does not speak the streaming protocol`);
      return this.#showPrompt();
    }
    await this.#send(frame);
  }

  async #cancel(): Promise<void> {
    if (!this.#busy) {
      this.#say("nothing is running");
      return this.#showPrompt();
    }
    this.#say(this.#screen.paint("yellow", "cancelling… (Ctrl+C again to quit)"));
    await this.#request({ type: "cancel" }, "cancel");
  }

  async #onInterrupt(): Promise<void> {
    const now = Date.now();
    const quick = now - this.#lastInterrupt < DOUBLE_INTERRUPT_MS;
    this.#lastInterrupt = now;
    if (this.#busy) {
      if (quick) return this.#quit(EXIT_OK);
      // The next Ctrl+C quits once nothing runs any more, whenever it comes.
      this.#interruptArmed = true;
      return this.#cancel();
    }
    if (this.#interruptArmed || quick) return this.#quit(EXIT_OK);
    this.#interruptArmed = true;
    // Like a shell: Ctrl+C drops what was typed (Ctrl+E then Ctrl+U: all of the line).
    this.#rl.write(null, { ctrl: true, name: "e" });
    this.#rl.write(null, { ctrl: true, name: "u" });
    this.#beforeOutput();
    this.#screen.line(this.#screen.paint("dim", "(press Ctrl+C again or Ctrl+D to quit)"));
    this.#showPrompt();
  }

  async #onTimeout(own: OwnMessage): Promise<void> {
    if (!this.#own.includes(own)) return;
    const seconds = this.#options.timeoutMs / 1000;
    // A cancel stops whichever turn runs, so it is only sent once this message's turn is running.
    if (own.turnId !== undefined && this.#turn?.turnId === own.turnId) {
      this.#error(`no answer within ${seconds} s; cancelling`);
      await this.#send({ type: "cancel" });
    } else {
      this.#error(`no answer within ${seconds} s; the message is still queued`);
    }
  }

  async #pump(): Promise<void> {
    for (;;) {
      const received = await this.#connection.link.next();
      if (received === "timeout") continue;
      if (received.kind === "closed") {
        if (!this.#done) {
          this.#error(received.reason);
          await this.#quit(EXIT_CONNECTION);
        }
        return;
      }
      this.#render(received.incoming);
      this.#showPrompt();
    }
  }

  #render(incoming: Incoming): void {
    switch (incoming.kind) {
      case "turn_start":
        return this.#onTurnStart(incoming);
      case "delta":
        return this.#onDelta(incoming.frame);
      case "tool_start":
        return this.#onToolStart(incoming.frame);
      case "tool_end":
        return this.#onToolEnd(incoming.frame);
      case "answer":
        return this.#onAnswer(incoming.frame, incoming.turnId);
      case "error":
        return this.#onError(incoming);
      case "cancelled":
        return this.#onCancelled(incoming.frame);
      case "history":
        return this.#printHistory(incoming.frame.items);
      case "welcome":
      case "other":
        return;
    }
  }

  #onTurnStart(start: { frame: TurnStartFrame; clientId: string | undefined }): void {
    const { frame } = start;
    const own = this.#own.find((message) => message.turnId === undefined && startsOwnTurn(start, message));
    if (own) own.turnId = frame.turn_id;
    this.#turn = { turnId: frame.turn_id, streamed: "", openTool: undefined, tools: new Map() };
    // Another tab's message: show it, so the conversation here stays whole.
    if (!own) this.#say(`${this.#screen.paint("magenta", "(other tab) you>")} ${frame.input}`);
  }

  #view(turnId: string): TurnView | undefined {
    return this.#turn?.turnId === turnId ? this.#turn : undefined;
  }

  #onDelta(frame: DeltaFrame): void {
    const view = this.#view(frame.turn_id);
    if (!view) return;
    this.#beforeOutput();
    if (view.streamed === "") {
      // A new run of text (the first, or the first after a tool) gets its own timestamped line.
      this.#screen.endLine();
      view.openTool = undefined;
      this.#screen.write(`${this.#screen.stamp()} ${this.#screen.paint("cyan", "agent>")} `);
    }
    view.streamed += frame.text;
    this.#screen.write(frame.text);
  }

  #onToolStart(frame: ToolStartFrame): void {
    const view = this.#view(frame.turn_id);
    if (!view) return;
    const args = formatArguments(frame.arguments);
    view.tools.set(frame.call_id, { name: frame.name, args });
    this.#beforeOutput();
    this.#screen.endLine();
    this.#screen.write(`${this.#screen.stamp()} ${this.#screen.paint("yellow", `⚙ ${frame.name}`)} ${args} …`);
    view.openTool = frame.call_id;
    view.streamed = "";
  }

  #onToolEnd(frame: ToolEndFrame): void {
    const view = this.#view(frame.turn_id);
    if (!view) return;
    const result = frame.ok
      ? this.#screen.paint("green", `ok ${frame.duration_ms} ms`)
      : this.#screen.paint("red", `✖ failed ${frame.duration_ms} ms: ${firstLine(frame.preview)}`);
    this.#beforeOutput();
    if (view.openTool === frame.call_id && !this.#screen.atLineStart) {
      this.#screen.write(` ${result}\n`);
    } else {
      const tool = view.tools.get(frame.call_id);
      this.#screen.line(`${this.#screen.stamp()} ${this.#screen.paint("yellow", `⚙ ${tool?.name ?? frame.call_id}`)} ${tool?.args ?? ""} … ${result}`);
    }
    view.openTool = undefined;
  }

  /** Ends a turn: the view is dropped and, if it was ours, its message and timer too. */
  #endTurn(turnId: string | undefined): void {
    const own = turnId === undefined ? this.#own[0] : this.#own.find((message) => message.turnId === turnId);
    if (own) {
      clearTimeout(own.timer);
      this.#own.splice(this.#own.indexOf(own), 1);
    }
    if (turnId === undefined || this.#turn?.turnId === turnId) this.#turn = undefined;
  }

  #onAnswer(frame: AnswerFrame, turnId: string | undefined): void {
    const view = turnId === undefined ? undefined : this.#view(turnId);
    this.#beforeOutput();
    if (view && view.streamed !== "" && view.openTool === undefined) {
      this.#screen.endLine();
    } else {
      // A seed answer, or a final text that was not streamed (after the last tool).
      this.#screen.line(`${this.#screen.stamp()} ${this.#screen.paint("cyan", "agent>")} ${frame.message}`);
    }
    this.#endTurn(turnId);
  }

  #onError(error: { frame: ErrorFrame; turnId: string | undefined; clientId: string | undefined }): void {
    this.#error(error.frame.error);
    // Seed sockets answer each message with one frame, errors included. On a streaming socket
    // an error outside a turn is the refusal of a message of ours that has not started.
    if (error.turnId !== undefined || !this.#connection.streaming) return this.#endTurn(error.turnId);
    const waiting = this.#own.find((message) => message.turnId === undefined && refusesOwnMessage(error, message));
    if (waiting) {
      clearTimeout(waiting.timer);
      this.#own.splice(this.#own.indexOf(waiting), 1);
    }
  }

  #onCancelled(frame: CancelledFrame): void {
    this.#say(this.#screen.paint("yellow", "⊘ turn cancelled"));
    this.#endTurn(frame.turn_id);
  }

  #printHistory(items: HistoryItem[]): void {
    this.#beforeOutput();
    const paint = (style: Style, text: string) => this.#screen.paint(style, text);
    this.#screen.line(paint("dim", `── history: ${items.length} ${items.length === 1 ? "item" : "items"} ──`));
    for (const item of items) {
      if (item.role === "user") {
        const status = item.status === "ok" ? "" : ` ${paint("yellow", `(${item.status})`)}`;
        this.#screen.line(`${paint("bold", "you>")} ${item.content}${status}`);
      } else if (item.role === "assistant") {
        this.#screen.line(`${paint("cyan", "agent>")} ${item.content}`);
      } else {
        const result = item.ok ? paint("green", "ok") : paint("red", `✖ failed: ${firstLine(item.preview)}`);
        this.#screen.line(`${paint("yellow", `⚙ ${item.name}`)} ${formatArguments(item.arguments)} … ${result}`);
      }
    }
    this.#screen.line(paint("dim", "── end of history ──"));
  }

  async #quit(code: number): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    for (const own of this.#own) clearTimeout(own.timer);
    this.#beforeOutput();
    this.#screen.endLine();
    this.#rl.close();
    await this.#connection.link.close();
    this.#finish?.(code);
  }
}

// ---- main --------------------------------------------------------------------------------------

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const io: Output = { stdout: process.stdout, stderr: process.stderr };
  // `client | head` closes stdout early: that is the reader's choice, not a failure to report.
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(EXIT_OK);
  });
  let options: ClientOptions;
  try {
    options = parseOptions(argv, env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr.write(`${PROGRAM}: ${error.message}\n\n${USAGE}\n`);
    return EXIT_USAGE;
  }
  if (options.help) {
    io.stdout.write(`${USAGE}\n`);
    return EXIT_OK;
  }
  const interactive = process.stdin.isTTY === true && options.messages.length === 0 && !options.json;
  try {
    const connection = await connect(options);
    if (interactive) return await new InteractiveChat(connection, options, process.stdin, process.stdout, env).run();
    return await runScript(connection, options, io, process.stdin);
  } catch (error) {
    if (!(error instanceof ClientError)) throw error;
    io.stderr.write(`✖ ${error.message}\n`);
    return error.exitCode;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  // process.exit: stdout and stderr writes are synchronous on Linux pipes, files and terminals,
  // and a stdin reader would otherwise keep the process alive after the last answer.
  process.exit(await main(process.argv.slice(2)));
}
