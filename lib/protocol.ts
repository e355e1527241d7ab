// The one definition of the wire protocol on /ws/<user_id>.
// Frames in are parsed here (nothing else reads raw socket data); frames out are built here
// (nothing else writes JSON to a socket). The seed frames keep the original's exact key order.

export const USER_ID_RULE = "user_id must be 1-64 characters of [A-Za-z0-9_.-] and not '.' or '..'";
const USER_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

export function isValidUserId(userId: string): boolean {
  return USER_ID_PATTERN.test(userId) && userId !== "." && userId !== "..";
}

// ---- error codes -----------------------------------------------------------------------------

/**
 * Why something was refused or failed: every error frame, refusal, close and HTTP error answer
 * carries one of these as `code`. Clients switch on the code; the English `error` beside it is
 * for people (and names the config key that governs it). Each is explained in docs/protocol.md
 * ("Error codes"), which a test holds to this list.
 */
export const ERROR_CODES = [
  // A frame or request the server cannot read.
  "invalid_frame",
  "invalid_request",
  "invalid_user_id",
  "streaming_required",
  // A message refused before it became a turn.
  "message_too_long",
  "rate_limited",
  "queue_full",
  "too_many_sessions",
  "quota_exceeded",
  // A turn that did not end with an answer.
  "turn_failed",
  "turn_timeout",
  "turn_cancelled",
  // A turn stopped by an output budget (limits.max_answer_*, max_parallel_tool_calls, max_turn_output_chars).
  "output_too_large",
  "too_many_tool_calls",
  // Answers to questions that no longer wait, or do not fit.
  "no_pending_approval",
  "no_pending_elicitation",
  "elicitation_invalid",
  // New chat.
  "reset_failed",
  "reset_incomplete",
  // Connections.
  "too_many_sockets",
  "too_many_new_sessions",
  "server_unavailable",
  // HTTP.
  "unauthorized",
  "forbidden",
  "not_found",
  "method_not_allowed",
  "conflict",
  "range_not_satisfiable",
  "file_too_large",
  "workspace_full",
  "upload_failed",
  "internal_error",
  // The user's MCP servers.
  "unknown_server",
  "oauth_not_used",
  "user_servers_disabled",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export function isErrorCode(value: unknown): value is ErrorCode {
  return ERROR_CODES.some((code) => code === value);
}

/** A refusal as a value: the code for programs, the text (naming the config key) for people. */
export interface Refusal {
  code: ErrorCode;
  error: string;
}

/** A refused HTTP request: its status, code and text; answered as `{"error", "code"}`. */
export interface HttpRefusal extends Refusal {
  status: number;
}

// ---- client -> server ----------------------------------------------------------------------

export type ClientFrame =
  /** A chat message: the seed's only frame. */
  | { type: "chat"; message: string; clientId?: string }
  /** Missing or blank `message`: the original silently ignores these. */
  | { type: "ignored" }
  /** Stop the running turn of this user (streaming extension). */
  | { type: "cancel" }
  /** Ask for the session's conversation (streaming extension), a page at a time. */
  | { type: "history"; before?: number | string; limit?: number }
  /** Start over: clear the history, new session_id; the workspace files too when asked. */
  | { type: "reset"; workspace: boolean }
  /** The answer to an approval_request; `always` allows this tool for the rest of the session. */
  | { type: "approval"; call_id: string; approved: boolean; reason?: string; always: boolean }
  /** The answer to an elicitation_request: accept (with the form's values), decline or cancel. */
  | { type: "elicitation"; request_id: string; action: ElicitationAction; content?: Record<string, ElicitationValue> }
  | ServerClientFrame;

export type ElicitationAction = "accept" | "decline" | "cancel";
/** A form field's value, as MCP elicitation allows: a string, number, boolean, or a list of strings (multi-select). */
export type ElicitationValue = string | number | boolean | string[];

/** A frame that cannot be read is refused with code `invalid_frame`. */
export type ParsedClientFrame = { ok: true; frame: ClientFrame } | { ok: false; error: string };

/** A JSON object (not null, not an array): the shape every frame has. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function parseClientFrame(text: string): ParsedClientFrame {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return { ok: false, error: "Invalid JSON format" };
  }
  if (!isRecord(data)) {
    return { ok: false, error: `Expected a JSON object like {"message": "..."}, got ${describeJson(data)}` };
  }
  // Control frames of the streaming extension. Any other `type` is left alone and the frame is
  // read as the seed reads it, so a seed client that adds its own fields keeps working.
  if (data.type === "cancel") return { ok: true, frame: { type: "cancel" } };
  if (data.type === "history") return parseHistory(data);
  if (data.type === "approval") return parseApproval(data);
  if (data.type === "elicitation") return parseElicitation(data);
  if (typeof data.type === "string" && SERVER_FRAME_TYPES.has(data.type)) return parseServerFrame(data.type, data);
  if (data.type === "reset") {
    if (data.workspace !== undefined && typeof data.workspace !== "boolean") {
      return { ok: false, error: `"workspace" must be true or false, got ${describeJson(data.workspace)}` };
    }
    return { ok: true, frame: { type: "reset", workspace: data.workspace === true } };
  }
  const message = data.message;
  if (message === undefined || message === null) return { ok: true, frame: { type: "ignored" } };
  if (typeof message !== "string") {
    return { ok: false, error: `"message" must be a string, got ${describeJson(message)}` };
  }
  if (message.trim() === "") return { ok: true, frame: { type: "ignored" } };
  // An optional `client_id` lets a streaming client match its message to the turn it starts
  // (echoed in `queued`/`turn_start`, and in a refusal); anything but a short string is ignored.
  const clientId = typeof data.client_id === "string" && data.client_id.length <= 128 ? data.client_id : undefined;
  return { ok: true, frame: { type: "chat", message, ...(clientId !== undefined ? { clientId } : {}) } };
}

function parseHistory(data: Record<string, unknown>): ParsedClientFrame {
  const { before, limit } = data;
  const index = typeof before === "number" && Number.isSafeInteger(before) && before >= 0;
  const turnId = typeof before === "string" && before !== "" && before.length <= 128;
  if (before !== undefined && !index && !turnId) {
    return { ok: false, error: `"before" must be an item index (0 or more) or a turn_id, got ${describeJson(before)}` };
  }
  if (limit !== undefined && !(typeof limit === "number" && Number.isSafeInteger(limit) && limit > 0)) {
    return { ok: false, error: `"limit" must be a whole number above 0, got ${describeJson(limit)}` };
  }
  return {
    ok: true,
    frame: {
      type: "history",
      ...(index || turnId ? { before: before } : {}),
      ...(typeof limit === "number" ? { limit } : {}),
    },
  };
}

function parseApproval(data: Record<string, unknown>): ParsedClientFrame {
  if (typeof data.call_id !== "string" || data.call_id === "")
    return { ok: false, error: 'an approval needs "call_id": the id from the approval_request' };
  if (typeof data.approved !== "boolean") return { ok: false, error: 'an approval needs "approved": true or false' };
  if (data.reason !== undefined && typeof data.reason !== "string") return { ok: false, error: '"reason" must be a string' };
  if (data.always !== undefined && typeof data.always !== "boolean") return { ok: false, error: '"always" must be true or false' };
  return {
    ok: true,
    frame: {
      type: "approval",
      call_id: data.call_id,
      approved: data.approved,
      ...(typeof data.reason === "string" ? { reason: data.reason.slice(0, 1000) } : {}),
      always: data.always === true,
    },
  };
}

const ELICITATION_ACTIONS: readonly ElicitationAction[] = ["accept", "decline", "cancel"];
const MAX_ELICITATION_FIELDS = 50;

function parseElicitation(data: Record<string, unknown>): ParsedClientFrame {
  if (typeof data.request_id !== "string" || data.request_id === "")
    return { ok: false, error: 'an elicitation answer needs "request_id": the id from the elicitation_request' };
  const action = ELICITATION_ACTIONS.find((candidate) => candidate === data.action);
  if (!action) return { ok: false, error: 'an elicitation answer needs "action": "accept", "decline" or "cancel"' };
  if (data.content !== undefined && !isRecord(data.content)) return { ok: false, error: '"content" must be an object of field values' };
  const content: Record<string, ElicitationValue> = {};
  for (const [key, value] of Object.entries(data.content ?? {}).slice(0, MAX_ELICITATION_FIELDS)) {
    const ok =
      typeof value === "string" ||
      typeof value === "boolean" ||
      (typeof value === "number" && Number.isFinite(value)) ||
      (Array.isArray(value) && value.every((item) => typeof item === "string"));
    if (!ok) return { ok: false, error: `field "${key}" must be a string, number, boolean or list of strings` };
    content[key] = typeof value === "string" ? value.slice(0, 10_000) : value;
  }
  return {
    ok: true,
    frame: { type: "elicitation", request_id: data.request_id, action, ...(action === "accept" ? { content } : {}) },
  };
}

function describeJson(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return `a ${typeof value}`;
}

// ---- server -> client ----------------------------------------------------------------------
// Seed frames: what every socket gets. A socket that did not opt in to streaming gets only these.

export interface WelcomeFrame {
  message: string;
  user_id: string;
  session_id: string;
}
export interface AnswerFrame {
  message: string;
  user_id: string;
  session_id: string;
}
/** Seed error frame: `error` as the seed words it, plus the stable `code` (additive: seed clients read `error`). */
export interface ErrorFrame {
  error: string;
  code: ErrorCode;
}

// Streaming frames: only for sockets opened with `?stream=1`. Every frame of a turn carries its
// `turn_id`; the last frame of a turn is `answer`, `error` or `cancelled`.

/** Welcome on a streaming socket: the seed welcome plus `type` and `stream: true`. */
export interface StreamWelcomeFrame extends WelcomeFrame {
  type: "welcome";
  stream: true;
}
/** A message was accepted and waits behind `position` turns (0: it starts now). */
export interface QueuedFrame {
  type: "queued";
  turn_id: string;
  input: string;
  position: number;
  client_id?: string;
}
export interface TurnStartFrame {
  type: "turn_start";
  turn_id: string;
  /** The user's message that started the turn (so other tabs can show it). */
  input: string;
  /** The `client_id` the message was sent with, if any. */
  client_id?: string;
}
export interface DeltaFrame {
  type: "delta";
  turn_id: string;
  text: string;
}
/** Which tool call a frame is about: shared by tool_start, approval_request and history items. */
export interface ToolCallFields {
  turn_id: string;
  call_id: string;
  /** Model-visible name, e.g. filesystem_read_file. */
  name: string;
  server: string;
  tool: string;
  /** Parsed arguments when they are a JSON object, else the raw string the model sent. */
  arguments: unknown;
}

export function toolCallFields(
  turnId: string,
  call: { callId: string; name: string; server: string; tool: string; arguments: string },
): ToolCallFields {
  return {
    turn_id: turnId,
    call_id: call.callId,
    name: call.name,
    server: call.server,
    tool: call.tool,
    arguments: displayArguments(call.arguments),
  };
}

export interface ToolStartFrame extends ToolCallFields {
  type: "tool_start";
}
export interface ToolEndFrame {
  type: "tool_end";
  turn_id: string;
  call_id: string;
  ok: boolean;
  /** The start of the result, at most PREVIEW_CHARS characters. */
  preview: string;
  duration_ms: number;
  /** Thumbnails of images the tool returned, as data: URLs (at most PREVIEW_IMAGES, each at most PREVIEW_IMAGE_CHARS). */
  images?: string[];
}
/** A running tool call reported progress (MCP notifications/progress, or a task's status). */
export interface ToolProgressFrame {
  type: "tool_progress";
  turn_id: string;
  call_id: string;
  progress: number;
  /** Present when the server knows it: the page then shows a bar. */
  total?: number;
  message?: string;
}
/** One field of an elicitation form, flattened from the server's schema. */
export interface ElicitationField {
  name: string;
  /** `multiselect`: a list of strings from `options`. */
  type: "string" | "number" | "integer" | "boolean" | "enum" | "multiselect";
  title: string;
  description?: string;
  required: boolean;
  default?: ElicitationValue;
  /** enum / multiselect: the allowed values and their labels. */
  options?: { value: string; label: string }[];
  /** string: email, uri, date, date-time. */
  format?: string;
  minimum?: number;
  maximum?: number;
  min_length?: number;
  max_length?: number;
}
/**
 * An MCP server asks the user something (elicitation/create). Answer with
 * `{"type":"elicitation","request_id","action":"accept"|"decline"|"cancel","content"?}`; the first
 * answer from any socket wins. Form mode has `fields`; URL mode has `url` (the user opens it).
 */
export interface ElicitationRequestFrame {
  type: "elicitation_request";
  request_id: string;
  /** The turn whose tool call asked, when one is running. */
  turn_id?: string;
  server: string;
  mode: "form" | "url";
  message: string;
  fields?: ElicitationField[];
  url?: string;
  timeout_ms: number;
}
/** How an elicitation ended: `by` is "user", "timeout" or "cancel" (the server or the turn gave up). */
export interface ElicitationResolvedFrame {
  type: "elicitation_resolved";
  request_id: string;
  turn_id?: string;
  action: ElicitationAction;
  by: "user" | "timeout" | "cancel";
}
/**
 * The final frame of a turn: still a seed answer frame for readers of `message` (on streaming
 * sockets the last assistant message; the deltas carried the rest), plus the turn's token usage.
 */
export interface StreamAnswerFrame extends AnswerFrame {
  type: "answer";
  turn_id: string;
  usage?: TokenUsage;
}
export interface StreamErrorFrame extends ErrorFrame {
  type: "error";
  turn_id?: string;
  /** On a refused message: the `client_id` it was sent with. */
  client_id?: string;
  /** On a refused approval answer: the call it was for. */
  call_id?: string;
  /** On a refused elicitation answer: the request it was for (the form stays open). */
  request_id?: string;
}
export interface CancelledFrame {
  type: "cancelled";
  turn_id: string;
}

/** One entry of the conversation as the `history` frame shows it. */
export type HistoryItem =
  | { role: "user"; turn_id: string; content: string; status: TurnStatus }
  | { role: "assistant"; turn_id: string; content: string }
  | (ToolCallFields & { role: "tool"; ok: boolean; preview: string; duration_ms?: number; images?: string[] });

/** How a turn ended; `running` while it runs, `interrupted` when the server stopped under it. */
export const TURN_STATUSES = ["running", "ok", "error", "cancelled", "interrupted"] as const;
export type TurnStatus = (typeof TURN_STATUSES)[number];

export function isTurnStatus(value: unknown): value is TurnStatus {
  return TURN_STATUSES.some((status) => status === value);
}

export interface HistoryFrame {
  type: "history";
  user_id: string;
  session_id: string;
  items: HistoryItem[];
  /** Index of the first item in the whole history: ask `{"type":"history","before":start}` for the page before. */
  start?: number;
  /** Items in the whole history. */
  total?: number;
}

/**
 * A tool call waits for a person: any streaming socket of the user may answer with
 * `{"type":"approval","call_id","approved","reason"?,"always"?}`; the first answer wins.
 */
export interface ApprovalRequestFrame extends ToolCallFields {
  type: "approval_request";
  /** "sampling": an MCP server asks to run the model (arguments: the prompt); absent for a tool call. */
  kind?: "sampling";
  /** How long the request waits before it counts as a denial. */
  timeout_ms: number;
}
/** How an approval request ended: `by` is "user" (a socket answered), "timeout" or "cancel". */
export interface ApprovalResolvedFrame {
  type: "approval_resolved";
  turn_id: string;
  call_id: string;
  approved: boolean;
  reason?: string;
  by: "user" | "timeout" | "cancel";
}

/** The session started over (after a `reset`): every streaming socket of the user gets it. */
export interface ResetFrame {
  type: "reset";
  user_id: string;
  session_id: string;
  workspace_cleared: boolean;
}

/**
 * Files in the user's workspace may have changed: after an upload or delete over HTTP, and after
 * a tool call that may write (the filesystem server's tools that are not read-only). Every
 * streaming socket of the user gets it; a page lists the workspace again.
 */
export interface FilesChangedFrame {
  type: "files_changed";
  user_id: string;
  /** What changed them: an HTTP upload or delete, or an agent's tool call. */
  cause: "upload" | "delete" | "tool";
  /** Workspace-relative paths known to have changed; empty when not known (a tool call). */
  paths: string[];
  /** With cause "tool": the turn and call that may have changed them. */
  turn_id?: string;
  call_id?: string;
}

export type StreamFrame =
  | QueuedFrame
  | ResetFrame
  | FilesChangedFrame
  | ApprovalRequestFrame
  | ApprovalResolvedFrame
  | StreamWelcomeFrame
  | TurnStartFrame
  | DeltaFrame
  | ToolStartFrame
  | ToolEndFrame
  | ToolProgressFrame
  | ElicitationRequestFrame
  | ElicitationResolvedFrame
  | StreamAnswerFrame
  | StreamErrorFrame
  | CancelledFrame
  | HistoryFrame
  | ServersFrame
  | AuthRequiredFrame
  | AuthCompletedFrame;

export type ServerFrame = WelcomeFrame | AnswerFrame | ErrorFrame | StreamFrame;

export const PREVIEW_CHARS = 500;
/** Image thumbnails on tool_end: at most this many, each a data: URL of at most this many characters. */
export const PREVIEW_IMAGES = 4;
export const PREVIEW_IMAGE_CHARS = 200_000;
/** tool_progress frames of one call are sent at most this often. */
export const PROGRESS_INTERVAL_MS = 100;

export function welcomeFrame(userId: string, sessionId: string): WelcomeFrame {
  return { message: `Welcome! You are connected as user: ${userId}`, user_id: userId, session_id: sessionId };
}

export function answerFrame(answer: string, userId: string, sessionId: string): AnswerFrame {
  return { message: answer, user_id: userId, session_id: sessionId };
}

export function errorFrame(code: ErrorCode, error: string): ErrorFrame {
  return { error, code };
}

/** A failure during a turn, worded as the original words it. */
export function turnErrorText(reason: string): string {
  return `An error occurred: ${reason}`;
}

export function turnErrorFrame(code: ErrorCode, reason: string): ErrorFrame {
  return errorFrame(code, turnErrorText(reason));
}

export function preview(text: string): string {
  return text.length <= PREVIEW_CHARS ? text : `${text.slice(0, PREVIEW_CHARS)}…`;
}

/** Tool arguments for display: the object when the model sent a JSON object, else the raw text. */
export function displayArguments(raw: string): unknown {
  try {
    const value: unknown = JSON.parse(raw);
    return isRecord(value) ? value : raw;
  } catch {
    return raw;
  }
}

export const BINARY_FRAME_ERROR = 'Binary frames are not supported: send text frames with JSON like {"message": "..."}';

export function encodeFrame(frame: ServerFrame): string {
  return JSON.stringify(frame);
}

/** Model tokens of a turn, a user or a day: in the streaming answer frame and /sessions/<user_id>. */
export interface TokenUsage {
  prompt_tokens: number;
  completion_tokens: number;
  /** Prompt tokens the provider served from its prompt cache (billed lower). */
  cached_tokens: number;
  total_tokens: number;
  model_calls: number;
  /** True when some call's numbers were counted here because the endpoint reported none. */
  estimated?: boolean;
}

// ---- HTTP answers: GET /sessions/<user_id> --------------------------------------------------

/** `stopped`: not running now (not started yet, or reaped while idle); the next use starts it. */
export type ServerState = "stopped" | "starting" | "ready" | "failed" | "exited" | "closed";

export interface ServerInfo {
  name: string;
  transport: string;
  state: ServerState;
  tools: number;
  error?: string;
  pid?: number;
  restarts: number;
  /** Times a remote server lost our session (it restarted) and we initialized again. */
  reconnects: number;
  last_reconnect_at?: string;
  shared: boolean;
}

/** A user's session as GET /sessions/<user_id> shows it. */
export interface SessionInfo {
  user_id: string;
  /** Live in memory (with its MCP servers), or only kept in the store. */
  active: boolean;
  session_id: string;
  created_at: string;
  last_activity: string;
  message_count: number;
  open_sockets: number;
  turn_running: boolean;
  queued_turns: number;
  mcp_servers: ServerInfo[];
  /** The user's model token usage as the store has it (it outlives a New chat), and today's tokens (UTC). */
  usage?: TokenUsage & { tokens_today: number; tokens_per_day: number | null };
}

// ---- frame builders: every frame the server sends is built here -------------------------------

const withClientId = (clientId: string | undefined) => (clientId !== undefined ? { client_id: clientId } : {});

export function streamWelcomeFrame(userId: string, sessionId: string): StreamWelcomeFrame {
  return { type: "welcome", ...welcomeFrame(userId, sessionId), stream: true };
}

export function queuedFrame(turnId: string, input: string, position: number, clientId?: string): QueuedFrame {
  return { type: "queued", turn_id: turnId, input, position, ...withClientId(clientId) };
}

export function turnStartFrame(turnId: string, input: string, clientId?: string): TurnStartFrame {
  return { type: "turn_start", turn_id: turnId, input, ...withClientId(clientId) };
}

export function deltaFrame(turnId: string, text: string): DeltaFrame {
  return { type: "delta", turn_id: turnId, text };
}

export function toolStartFrame(turnId: string, call: Parameters<typeof toolCallFields>[1]): ToolStartFrame {
  return { type: "tool_start", ...toolCallFields(turnId, call) };
}

export function toolEndFrame(
  turnId: string,
  callId: string,
  ok: boolean,
  result: string,
  durationMs: number,
  images: readonly { mimeType: string; data: string }[] = [],
): ToolEndFrame {
  const thumbnails = thumbnailUrls(images.map((image) => `data:${image.mimeType};base64,${image.data}`));
  return {
    type: "tool_end",
    turn_id: turnId,
    call_id: callId,
    ok,
    preview: preview(result),
    duration_ms: durationMs,
    ...(thumbnails.length > 0 ? { images: thumbnails } : {}),
  };
}

/** Image thumbnails for the page: larger images reach the model but not the frame, which stays small. */
export function thumbnailUrls(urls: readonly string[]): string[] {
  return urls.filter((url) => url.length <= PREVIEW_IMAGE_CHARS).slice(0, PREVIEW_IMAGES);
}

export function toolProgressFrame(
  turnId: string,
  callId: string,
  progress: { progress: number; total?: number; message?: string },
): ToolProgressFrame {
  return {
    type: "tool_progress",
    turn_id: turnId,
    call_id: callId,
    progress: progress.progress,
    ...(progress.total !== undefined ? { total: progress.total } : {}),
    ...(progress.message !== undefined ? { message: progress.message.slice(0, PREVIEW_CHARS) } : {}),
  };
}

export function elicitationRequestFrame(
  fields: Omit<ElicitationRequestFrame, "type" | "turn_id"> & { turnId?: string },
): ElicitationRequestFrame {
  const { turnId, ...rest } = fields;
  return { type: "elicitation_request", ...(turnId !== undefined ? { turn_id: turnId } : {}), ...rest };
}

export function elicitationResolvedFrame(
  requestId: string,
  turnId: string | undefined,
  action: ElicitationAction,
  by: ElicitationResolvedFrame["by"],
): ElicitationResolvedFrame {
  return { type: "elicitation_resolved", request_id: requestId, ...(turnId !== undefined ? { turn_id: turnId } : {}), action, by };
}

export function streamAnswerFrame(
  turnId: string,
  answer: string,
  userId: string,
  sessionId: string,
  usage?: TokenUsage,
): StreamAnswerFrame {
  return { type: "answer", turn_id: turnId, ...answerFrame(answer, userId, sessionId), ...(usage ? { usage: { ...usage } } : {}) };
}

/** An error on a streaming socket, tied to the turn, message or approval it is about. */
export function streamErrorFrame(
  code: ErrorCode,
  error: string,
  about: { turnId?: string; clientId?: string; callId?: string; requestId?: string } = {},
): StreamErrorFrame {
  return {
    type: "error",
    ...(about.turnId !== undefined ? { turn_id: about.turnId } : {}),
    error,
    code,
    ...withClientId(about.clientId),
    ...(about.callId !== undefined ? { call_id: about.callId } : {}),
    ...(about.requestId !== undefined ? { request_id: about.requestId } : {}),
  };
}

export function cancelledFrame(turnId: string): CancelledFrame {
  return { type: "cancelled", turn_id: turnId };
}

export function historyFrame(
  userId: string,
  sessionId: string,
  items: HistoryItem[],
  page?: { start: number; total: number },
): HistoryFrame {
  return { type: "history", user_id: userId, session_id: sessionId, items, ...(page ? { start: page.start, total: page.total } : {}) };
}

export function approvalRequestFrame(
  turnId: string,
  call: Parameters<typeof toolCallFields>[1] & { kind?: "sampling" },
  timeoutMs: number,
): ApprovalRequestFrame {
  return {
    type: "approval_request",
    ...(call.kind ? { kind: call.kind } : {}),
    ...toolCallFields(turnId, call),
    timeout_ms: timeoutMs,
  };
}

export function approvalResolvedFrame(
  turnId: string,
  callId: string,
  approved: boolean,
  reason: string | undefined,
  by: ApprovalResolvedFrame["by"],
): ApprovalResolvedFrame {
  return { type: "approval_resolved", turn_id: turnId, call_id: callId, approved, ...(reason ? { reason } : {}), by };
}

export function resetFrame(userId: string, sessionId: string, workspaceCleared: boolean): ResetFrame {
  return { type: "reset", user_id: userId, session_id: sessionId, workspace_cleared: workspaceCleared };
}

export function filesChangedFrame(
  userId: string,
  cause: FilesChangedFrame["cause"],
  paths: string[],
  call?: { turnId: string; callId: string },
): FilesChangedFrame {
  return { type: "files_changed", user_id: userId, cause, paths, ...(call ? { turn_id: call.turnId, call_id: call.callId } : {}) };
}

/** A refused chat message: a streaming client learns which one from its `client_id`. */
export function refusalFrame(streaming: boolean, refusal: Refusal, clientId?: string): ServerFrame {
  return streaming ? streamErrorFrame(refusal.code, refusal.error, { clientId }) : errorFrame(refusal.code, refusal.error);
}

/** Bytes a WebSocket close reason may hold (RFC 6455: 125 of payload, 2 of them the close code). */
const MAX_CLOSE_REASON_BYTES = 123;

/** A close reason for a refused socket: `<code>: <text>`, the text cut (whole characters) to fit. */
export function closeReason(refusal: Refusal): string {
  const bytes = (text: string) => new TextEncoder().encode(text).length;
  let reason = `${refusal.code}: ${refusal.error}`;
  if (bytes(reason) <= MAX_CLOSE_REASON_BYTES) return reason;
  while (bytes(`${reason}…`) > MAX_CLOSE_REASON_BYTES) reason = [...reason].slice(0, -1).join("");
  return `${reason}…`;
}

/** The JSON body of an HTTP error answer: `error` for people, `code` for programs, and any extra fields. */
export function errorAnswer(refusal: Refusal, extra: Record<string, unknown> = {}): { error: string; code: ErrorCode } {
  return { error: refusal.error, code: refusal.code, ...extra };
}

/** Whether a streaming frame ends a turn. */
export function endsTurn(frame: StreamFrame): boolean {
  return frame.type === "answer" || frame.type === "error" || frame.type === "cancelled";
}

// ---- a user's MCP servers: their state, authorization, and the servers a user adds ------------

/** One MCP server as the `servers` frame shows it. */
export interface ServerStatus {
  name: string;
  transport: string;
  state: ServerState;
  tools: number;
  /** What failed and what to do (with the last lines of a child's stderr). */
  error?: string;
  /** The server asks for OAuth authorization: the page offers "Connect <name>". */
  needs_auth: boolean;
  /** Added by the user (GET/POST/DELETE /servers/<user_id>), not by the operator. */
  user_added: boolean;
}

/** Every MCP server of the user's session: after the welcome, and whenever one's state changes. */
export interface ServersFrame {
  type: "servers";
  servers: ServerStatus[];
}

/** A server needs the user's authorization: open `url` in a browser and sign in there. */
export interface AuthRequiredFrame {
  type: "auth_required";
  server: string;
  url: string;
}

/** The user authorized a server (in any tab): its tools are there now. */
export interface AuthCompletedFrame {
  type: "auth_completed";
  server: string;
}

export function serversFrame(servers: ServerStatus[]): ServersFrame {
  return { type: "servers", servers };
}

export function authRequiredFrame(server: string, url: string): AuthRequiredFrame {
  return { type: "auth_required", server, url };
}

export function authCompletedFrame(server: string): AuthCompletedFrame {
  return { type: "auth_completed", server };
}

/**
 * Frames about one server, from a streaming socket: `server_retry` starts a failed server again,
 * `server_connect` asks for its authorization (an `auth_required` answers), `server_disconnect`
 * forgets the user's tokens for it, `server_add` / `server_remove` add or remove a server of the
 * user's own (as POST / DELETE /servers/<user_id> do).
 */
export type ServerClientFrame =
  | { type: "server_retry" | "server_connect" | "server_disconnect" | "server_remove"; server: string }
  | { type: "server_add"; server: UserServerInput };

/** A server a user adds: remote only. */
export interface UserServerInput {
  name: string;
  url: string;
  transport: "streamable_http" | "sse";
  headers?: Record<string, string>;
}

const SERVER_FRAME_TYPES = new Set(["server_retry", "server_connect", "server_disconnect", "server_remove", "server_add"]);
const USER_SERVER_NAME = /^[A-Za-z0-9_-]{1,40}$/;
export const USER_SERVER_NAME_RULE = "a server name is 1-40 characters of [A-Za-z0-9_-]";

function parseServerFrame(type: string, data: Record<string, unknown>): ParsedClientFrame {
  if (type === "server_add") {
    const parsed = parseUserServer(data.server);
    return parsed.ok ? { ok: true, frame: { type: "server_add", server: parsed.server } } : parsed;
  }
  if (typeof data.server !== "string" || data.server === "" || data.server.length > 100)
    return { ok: false, error: `a ${type} frame needs "server": the server's name` };
  if (type !== "server_retry" && type !== "server_connect" && type !== "server_disconnect" && type !== "server_remove")
    return { ok: false, error: `unknown frame type ${type}` };
  return { ok: true, frame: { type, server: data.server } };
}

/** A user's server as sent over HTTP or the socket; caps: 2048-character URL, 20 headers. */
export function parseUserServer(value: unknown): { ok: true; server: UserServerInput } | { ok: false; error: string } {
  if (!isRecord(value)) return { ok: false, error: 'a server is an object {"name", "url", "transport", "headers"?}' };
  const { name, url, transport, headers } = value;
  if (typeof name !== "string" || !USER_SERVER_NAME.test(name)) return { ok: false, error: USER_SERVER_NAME_RULE };
  if (typeof url !== "string" || url.length > 2048) return { ok: false, error: '"url" must be an http(s) URL of at most 2048 characters' };
  let parsedUrl: URL;
  try {
    parsedUrl = new URL(url);
  } catch {
    return { ok: false, error: `"url" is not a URL: ${url.slice(0, 200)}` };
  }
  if (parsedUrl.protocol !== "https:" && parsedUrl.protocol !== "http:")
    return { ok: false, error: `"url" must be http or https, got ${parsedUrl.protocol}` };
  const kind = transport ?? "streamable_http";
  if (kind !== "streamable_http" && kind !== "sse")
    return { ok: false, error: '"transport" must be "streamable_http" or "sse" (a server you add is remote)' };
  const out: Record<string, string> = {};
  if (headers !== undefined) {
    if (!isRecord(headers)) return { ok: false, error: '"headers" must be an object of strings' };
    const entries = Object.entries(headers);
    if (entries.length > 20) return { ok: false, error: '"headers" may have at most 20 entries' };
    for (const [key, headerValue] of entries) {
      if (!/^[A-Za-z0-9-]{1,100}$/.test(key) || typeof headerValue !== "string" || headerValue.length > 4096 || /[\r\n]/.test(headerValue))
        return { ok: false, error: `header "${key.slice(0, 100)}" must be a token name with a one-line string value` };
      out[key] = headerValue;
    }
  }
  return { ok: true, server: { name, url: parsedUrl.href, transport: kind, ...(headers !== undefined ? { headers: out } : {}) } };
}
