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
  type ApprovalRequestFrame,
  type ApprovalResolvedFrame,
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
/** The reason --deny-all gives; the model reads "denied by the user: <this>". */
export const DENY_ALL_REASON = "denied by --deny-all";

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
  --approve-all       approve every tool call of this client's messages that needs a person's
                      approval (without it a terminal session asks y/n; a script does not answer)
  --deny-all          deny those calls instead, with the reason "${DENY_ALL_REASON}"
  --token TOKEN       send "Authorization: Bearer TOKEN" (default: $MCP_AGENT_AUTH_TOKEN,
                      else $MCP_AGENT_TOKEN)
  -h, --help          show this help

Tool calls that the server's require_approval setting covers wait for a person. Interactively
the client asks: y (yes), n (no; "n not now" gives a reason) or a (always: yes, and no more
questions for that tool this session). A script without --approve-all or --deny-all does not
answer: the call waits for another client of the user (the chat page, or this client in a
terminal), and if nobody answers the server denies it when its approval timeout runs out.

Exit codes: 0 every message answered, 1 an error came back, 2 usage error,
            3 cannot connect or connection lost, 4 timed out waiting for an answer`;

export interface SocketTarget {
  /** What the client connects to (with ?stream=1). */
  url: string;
  /** What messages name: the socket URL without the stream flag or credentials. */
  display: string;
}

/** How tool calls that wait for approval are answered: asked (interactive) or not at all (scripts), or answered by a flag. */
export type ApprovalPolicy = "ask" | "approve-all" | "deny-all";

export interface ClientOptions {
  target: SocketTarget;
  user: string;
  timeoutMs: number;
  token: string | undefined;
  json: boolean;
  messages: string[];
  approvals: ApprovalPolicy;
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
        "approve-all": { type: "boolean" },
        "deny-all": { type: "boolean" },
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
  const approveAll = values["approve-all"] ?? false;
  const denyAll = values["deny-all"] ?? false;
  if (approveAll && denyAll) throw new UsageError("--approve-all and --deny-all cannot be used together");
  return {
    target: socketTarget(values.url ?? DEFAULT_URL, user),
    user,
    timeoutMs: parseTimeout(values.timeout ?? String(DEFAULT_TIMEOUT_SECONDS)),
    // The server's own variable first (the same token on both ends), then the client's older name.
    token: values.token ?? (env.MCP_AGENT_AUTH_TOKEN || env.MCP_AGENT_TOKEN || undefined),
    json: values.json ?? false,
    messages,
    approvals: approveAll ? "approve-all" : denyAll ? "deny-all" : "ask",
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
  | { kind: "approval_request"; frame: ApprovalRequestFrame }
  | { kind: "approval_resolved"; frame: ApprovalResolvedFrame }
  | { kind: "other" };

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const isString = (value: unknown): value is string => typeof value === "string";
const stringOr = (value: unknown, fallback: string): string => (isString(value) ? value : fallback);
const optionalString = (value: unknown): string | undefined => (isString(value) ? value : undefined);

const TURN_STATUSES: readonly TurnStatus[] = ["running", "ok", "error", "cancelled", "interrupted"];
const RESOLVED_BY: readonly ApprovalResolvedFrame["by"][] = ["user", "timeout", "cancel"];

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
    case "approval_request":
      // Without a call id there is nothing to answer.
      if (isString(turnId) && isString(data.call_id) && data.call_id !== "" && isString(data.name)) {
        const timeoutMs = typeof data.timeout_ms === "number" && Number.isFinite(data.timeout_ms) && data.timeout_ms >= 0 ? data.timeout_ms : 0;
        const frame: ApprovalRequestFrame = {
          type,
          turn_id: turnId,
          call_id: data.call_id,
          name: data.name,
          server: stringOr(data.server, ""),
          tool: stringOr(data.tool, ""),
          arguments: data.arguments,
          timeout_ms: timeoutMs,
        };
        return { kind: "approval_request", frame };
      }
      break;
    case "approval_resolved": {
      const by = RESOLVED_BY.find((value) => value === data.by);
      if (isString(turnId) && isString(data.call_id) && typeof data.approved === "boolean" && by !== undefined) {
        const reason = optionalString(data.reason);
        const frame: ApprovalResolvedFrame = { type, turn_id: turnId, call_id: data.call_id, approved: data.approved, ...(reason !== undefined ? { reason } : {}), by };
        return { kind: "approval_resolved", frame };
      }
      break;
    }
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

/**
 * The call id of an answer that came too late ("no approval is waiting for call <id> ..."):
 * another client answered first, or the request timed out or was cancelled. Such an error is
 * outside any turn, like the refusal of a message, so it must not be taken for one.
 */
export function lateApprovalCallId(error: { frame: ErrorFrame; turnId: string | undefined }): string | undefined {
  if (error.turnId !== undefined) return undefined;
  return /^no approval is waiting for call (\S+)/.exec(error.frame.error)?.[1];
}

// ---- approvals ---------------------------------------------------------------------------------

/** An answer to an approval request, as typed or as a flag gives it. */
export interface ApprovalAnswer {
  approved: boolean;
  reason?: string;
  /** Approve this tool for the rest of the session. */
  always: boolean;
}

/**
 * A typed answer: y/yes, n/no (the rest of the line is the reason: "n not now") or a/always.
 * Anything else is undefined, and the question is asked again.
 */
export function parseApprovalAnswer(line: string): ApprovalAnswer | undefined {
  const match = /^(y|yes|n|no|a|always)(?:\s+([\s\S]*))?$/i.exec(line.trim());
  if (!match) return undefined;
  const word = (match[1] ?? "").toLowerCase();
  const rest = (match[2] ?? "").trim();
  if (word === "n" || word === "no") return { approved: false, ...(rest !== "" ? { reason: rest } : {}), always: false };
  // "y sure" would be a yes with a reason nobody reads: ask again rather than guess.
  if (rest !== "") return undefined;
  return { approved: true, always: word === "a" || word === "always" };
}

/** The answer a flag gives for the client's own calls, or undefined when a person decides. */
export function policyAnswer(policy: ApprovalPolicy): ApprovalAnswer | undefined {
  if (policy === "approve-all") return { approved: true, always: false };
  if (policy === "deny-all") return { approved: false, reason: DENY_ALL_REASON, always: false };
  return undefined;
}

function approvalFrame(callId: string, answer: ApprovalAnswer): Record<string, unknown> {
  return {
    type: "approval",
    call_id: callId,
    approved: answer.approved,
    ...(answer.reason !== undefined ? { reason: answer.reason } : {}),
    ...(answer.always ? { always: true } : {}),
  };
}

function waitText(timeoutMs: number): string {
  return `${Math.round(timeoutMs / 1000)} s`;
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
function refusesOwnMessage(error: { frame: ErrorFrame; turnId: string | undefined; clientId: string | undefined }, sent: Sent): boolean {
  if (error.turnId !== undefined || lateApprovalCallId(error) !== undefined) return false;
  // Without a client_id, an error outside any turn can only be about a frame we sent.
  return error.clientId === undefined || error.clientId === sent.clientId;
}

/** Picks out the final frame of one message's turn. */
interface OutcomeMatcher {
  match(incoming: Incoming): Outcome | undefined;
  started(): boolean;
  /** The id of the message's turn, once it started (always undefined on a seed socket). */
  turnId(): string | undefined;
}

function outcomeMatcher(streaming: boolean, sent: Sent): OutcomeMatcher {
  if (!streaming) {
    return {
      match: (incoming) => {
        if (incoming.kind === "answer") return { kind: "answer", text: incoming.frame.message };
        if (incoming.kind === "error") return { kind: "error", text: incoming.frame.error };
        return undefined;
      },
      started: () => true,
      turnId: () => undefined,
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
    turnId: () => turnId,
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
    const { incoming } = received;
    // Only the calls of this message's turn: other tabs' calls are theirs to answer.
    if (incoming.kind === "approval_request" && incoming.frame.turn_id === matcher.turnId()) {
      await answerOwnApproval(connection, incoming.frame, message, options, io);
      continue;
    }
    if (incoming.kind === "error" && lateApprovalCallId(incoming) !== undefined) {
      // Our answer lost the race (the server's timeout, or another client, was first): the
      // approval_resolved frame said how the call ended, and the turn goes on.
      io.stderr.write(`note: ${incoming.frame.error}\n`);
      continue;
    }
    const outcome = matcher.match(incoming);
    if (outcome) return outcome;
  }
}

/** A call of our own turn waits for approval: answered as the flag says, or left to another client. */
async function answerOwnApproval(connection: Connection, request: ApprovalRequestFrame, message: string, options: ClientOptions, io: Output): Promise<void> {
  const answer = policyAnswer(options.approvals);
  if (answer) {
    await connection.link.send(approvalFrame(request.call_id, answer));
    return;
  }
  io.stderr.write(
    `note: ${quoteMessage(message)}: the tool call ${request.name} ${formatArguments(request.arguments)} waits for approval from another client ` +
      `of user ${connection.welcome.user_id} (the chat page, or ${PROGRAM} in a terminal); this client answers only with --approve-all or --deny-all, ` +
      `and if nobody answers within ${waitText(request.timeout_ms)} the server denies the call\n`,
  );
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
Anything else is sent to the agent.
While a tool call waits for your approval (⚠), the next line answers it:
  y            yes, run it
  n [reason]   no; the reason, if any, is passed on to the agent ("n not now")
  a            always: yes, and do not ask again for this tool in this session`;

const CHAT_PROMPT = "you> ";
const APPROVAL_PROMPT = "approve? [y/n/a]> ";
const APPROVAL_CHOICES = "[y]es / [n]o / [a]lways";

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
  /** Approval requests not answered yet, oldest first: the first one is the question asked. */
  #asked: ApprovalRequestFrame[] = [];
  /** Every request seen and not resolved yet, with what we answered to it (if we did). */
  readonly #requests = new Map<string, { frame: ApprovalRequestFrame; answer: ApprovalAnswer | undefined }>();
  /**
   * The question that was asked and then settled elsewhere (another tab, the timeout) before we
   * answered. An answer typed just after that is sent for it (the server says it came too late)
   * rather than to the agent as a chat message "y".
   */
  #missed: string | undefined;

  constructor(connection: Connection, options: ClientOptions, stdin: NodeJS.ReadStream, stdout: NodeJS.WriteStream, env: NodeJS.ProcessEnv) {
    this.#connection = connection;
    this.#options = options;
    this.#screen = new Screen(stdout, colourWanted(stdout, env));
    this.#rl = readline.createInterface({ input: stdin, output: stdout, prompt: CHAT_PROMPT, terminal: stdout.isTTY === true, historySize: 200 });
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
    if (this.#done || this.#promptShown) return;
    // While a turn runs there is no prompt, unless a tool call of it waits for an answer.
    const asking = this.#asked.length > 0;
    if (this.#busy && !asking) return;
    this.#screen.endLine();
    this.#rl.setPrompt(asking ? APPROVAL_PROMPT : CHAT_PROMPT);
    this.#promptShown = true;
    // preserveCursor keeps whatever the user had typed while output was printed.
    this.#rl.prompt(true);
  }

  async #onLine(line: string): Promise<void> {
    this.#screen.atLineStart = true;
    this.#promptShown = false;
    this.#interruptArmed = false;
    const text = line.trim();
    // The commands still work while a question is open; any other line answers it.
    const question = this.#asked[0];
    if (question && !["help", "/help", "quit", "exit", "/quit", "/exit", "/history", "/cancel"].includes(text)) {
      return this.#answerQuestion(question, text);
    }
    const missed = this.#missed;
    this.#missed = undefined;
    const late = missed !== undefined && this.#busy ? parseApprovalAnswer(text) : undefined;
    if (missed !== undefined && late) {
      await this.#send(approvalFrame(missed, late));
      return this.#showPrompt();
    }
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
      case "approval_request":
        return this.#onApprovalRequest(incoming.frame);
      case "approval_resolved":
        return this.#onApprovalResolved(incoming.frame);
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
    // A turn that ended has nothing left to approve (its approval_resolved frames came first).
    this.#missed = undefined;
    this.#asked = this.#asked.filter((request) => turnId !== undefined && request.turn_id !== turnId);
    for (const [callId, { frame }] of this.#requests) if (turnId === undefined || frame.turn_id === turnId) this.#requests.delete(callId);
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
    // Our answer came too late: another client or the timeout was first, as the line before said.
    if (lateApprovalCallId(error) !== undefined) return this.#say(this.#screen.paint("dim", error.frame.error));
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

  /** Is this turn one of our own messages (not another tab's)? */
  #ownTurn(turnId: string): boolean {
    return this.#own.some((message) => message.turnId === turnId);
  }

  /** Ends an open tool line, so the approval lines get lines of their own. */
  #closeToolLine(turnId: string): void {
    const view = this.#view(turnId);
    if (view) {
      view.openTool = undefined;
      view.streamed = "";
    }
    this.#beforeOutput();
    this.#screen.endLine();
  }

  #onApprovalRequest(frame: ApprovalRequestFrame): void {
    // A page (or this client) that joins mid-turn is sent the request again.
    if (this.#requests.has(frame.call_id)) return;
    const call = `${frame.name} ${formatArguments(frame.arguments)}`;
    const answer = this.#ownTurn(frame.turn_id) ? policyAnswer(this.#options.approvals) : undefined;
    this.#requests.set(frame.call_id, { frame, answer });
    this.#closeToolLine(frame.turn_id);
    if (answer) {
      const flag = answer.approved ? "--approve-all" : "--deny-all";
      this.#say(`${this.#screen.paint("yellow", `⚠ ${call}`)} needs approval: answered by ${flag}`);
      void this.#send(approvalFrame(frame.call_id, answer));
      return;
    }
    this.#asked.push(frame);
    // One question at a time: a second one is asked once the first is answered.
    if (this.#asked.length === 1) this.#ask(frame);
  }

  #ask(frame: ApprovalRequestFrame): void {
    const other = this.#ownTurn(frame.turn_id) ? "" : ` ${this.#screen.paint("magenta", "(other tab)")}`;
    const wait = frame.timeout_ms > 0 ? ` (waits up to ${waitText(frame.timeout_ms)})` : "";
    this.#say(`${this.#screen.paint("yellow", `⚠ approve ${frame.name}`)} ${formatArguments(frame.arguments)}?${other} ${this.#screen.paint("bold", APPROVAL_CHOICES)}${wait}`);
  }

  async #answerQuestion(frame: ApprovalRequestFrame, text: string): Promise<void> {
    const answer = parseApprovalAnswer(text);
    if (!answer) {
      if (text !== "") this.#error('answer y (yes), n (no; a reason may follow: "n not now") or a (always allow this tool in this session)');
      return this.#showPrompt();
    }
    this.#asked.shift();
    this.#missed = undefined;
    const known = this.#requests.get(frame.call_id);
    if (known) known.answer = answer;
    await this.#send(approvalFrame(frame.call_id, answer));
    const next = this.#asked[0];
    if (next) this.#ask(next);
    this.#showPrompt();
  }

  #onApprovalResolved(frame: ApprovalResolvedFrame): void {
    const known = this.#requests.get(frame.call_id);
    this.#requests.delete(frame.call_id);
    const wasAsked = this.#asked[0]?.call_id === frame.call_id;
    this.#asked = this.#asked.filter((request) => request.call_id !== frame.call_id);
    this.#closeToolLine(frame.turn_id);
    const name = known?.frame.name ?? `call ${frame.call_id}`;
    // Someone else's answer (another tab, another client) is marked as such.
    const elsewhere = frame.by === "user" && known?.answer === undefined ? " (answered by another client)" : "";
    if (frame.approved) {
      const always = known?.answer?.always === true ? ": always allowed for the rest of the session" : "";
      this.#say(`${this.#screen.paint("green", `✔ ${name} approved`)}${always}${elsewhere}`);
    } else {
      const style: Style = frame.by === "cancel" ? "yellow" : "red";
      this.#say(`${this.#screen.paint(style, `⊘ ${name}`)} ${frame.reason ?? "denied"}${elsewhere}`);
    }
    if (wasAsked) this.#missed = frame.call_id;
    // The question that was open is gone: ask the next one, if any.
    const next = this.#asked[0];
    if (wasAsked && next) this.#ask(next);
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
