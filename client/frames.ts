// What the client reads from the socket and writes to it. Nothing from the socket is trusted:
// each frame is checked field by field and rebuilt as the protocol.ts type, so the rest of the
// client works with typed values only. The frames the client sends are built here too, and so is
// the matching of our own messages to the turns they start, which scripts and the terminal share.
import type {
  AnswerFrame,
  ApprovalRequestFrame,
  ApprovalResolvedFrame,
  CancelledFrame,
  ClientFrame,
  DeltaFrame,
  ElicitationField,
  ElicitationRequestFrame,
  ElicitationResolvedFrame,
  ElicitationValue,
  ErrorCode,
  ErrorFrame,
  HistoryFrame,
  HistoryItem,
  ToolEndFrame,
  ToolProgressFrame,
  ToolStartFrame,
  TurnStartFrame,
  TurnStatus,
  WelcomeFrame,
} from "../lib/protocol.ts";
import { isErrorCode, isRecord as isJsonObject, isTurnStatus } from "../lib/protocol.ts";
import { DENY_ALL_REASON, type ApprovalPolicy } from "./options.ts";

// ---- frames from the server --------------------------------------------------------------------

export type Incoming =
  | { kind: "welcome"; frame: WelcomeFrame; streaming: boolean }
  /** `clientId`: the client_id the message was sent with, when the server echoes it. */
  | { kind: "turn_start"; frame: TurnStartFrame; clientId: string | undefined }
  | { kind: "delta"; frame: DeltaFrame }
  | { kind: "tool_start"; frame: ToolStartFrame }
  | { kind: "tool_end"; frame: ToolEndFrame }
  | { kind: "tool_progress"; frame: ToolProgressFrame }
  | { kind: "elicitation_request"; frame: ElicitationRequestFrame }
  | { kind: "elicitation_resolved"; frame: ElicitationResolvedFrame }
  /** `turnId` is undefined for a seed answer, which also has the shape of a seed welcome. */
  | { kind: "answer"; frame: AnswerFrame; turnId: string | undefined }
  /**
   * `turnId` is undefined for an error outside a turn, or any error on a seed socket. `code`: the
   * server's error code (undefined when it sent none we know). `requestId`: a refused elicitation
   * answer (the form is still open); `callId`: a refused approval answer.
   */
  | {
      kind: "error";
      frame: Pick<ErrorFrame, "error">;
      code: ErrorCode | undefined;
      turnId: string | undefined;
      clientId: string | undefined;
      requestId?: string;
      callId?: string;
    }
  | { kind: "cancelled"; frame: CancelledFrame }
  | { kind: "history"; frame: HistoryFrame }
  | { kind: "approval_request"; frame: ApprovalRequestFrame }
  | { kind: "approval_resolved"; frame: ApprovalResolvedFrame }
  /** An MCP server needs the user's sign-in at `url` (OAuth), or the sign-in is done. */
  | { kind: "auth_required"; server: string; url: string }
  | { kind: "auth_completed"; server: string }
  | { kind: "other" };

/** An error as classified: a message refused, a turn that failed, or an approval answered late. */
export type IncomingError = Extract<Incoming, { kind: "error" }>;
export type IncomingTurnStart = Extract<Incoming, { kind: "turn_start" }>;

type Json = Record<string, unknown>;

export const isRecord: (value: unknown) => value is Json = isJsonObject;

export const isString = (value: unknown): value is string => typeof value === "string";
const stringOr = (value: unknown, fallback: string): string => (isString(value) ? value : fallback);
const optionalString = (value: unknown): string | undefined => (isString(value) ? value : undefined);

const RESOLVED_BY: readonly ApprovalResolvedFrame["by"][] = ["user", "timeout", "cancel"];

const ELICITATION_ACTIONS: readonly ElicitationResolvedFrame["action"][] = ["accept", "decline", "cancel"];
const FIELD_TYPES: readonly ElicitationField["type"][] = ["string", "number", "integer", "boolean", "enum", "multiselect"];

function isElicitationValue(value: unknown): value is ElicitationValue {
  return isString(value) || typeof value === "number" || typeof value === "boolean" || (Array.isArray(value) && value.every(isString));
}

/** One field of an elicitation form, rebuilt from the frame (unknown keys dropped). */
function elicitationField(value: unknown): ElicitationField | undefined {
  if (!isRecord(value) || !isString(value.name)) return undefined;
  const type = FIELD_TYPES.find((candidate) => candidate === value.type);
  if (type === undefined) return undefined;
  const num = (key: string) => (typeof value[key] === "number" ? { [key]: value[key] } : {});
  const fallback = value.default;
  const options = Array.isArray(value.options)
    ? value.options
        .filter(isRecord)
        .flatMap((option) => (isString(option.value) ? [{ value: option.value, label: stringOr(option.label, option.value) }] : []))
    : undefined;
  return {
    name: value.name,
    type,
    title: stringOr(value.title, value.name),
    ...(isString(value.description) ? { description: value.description } : {}),
    required: value.required === true,
    ...(isElicitationValue(fallback) ? { default: fallback } : {}),
    ...(options ? { options } : {}),
    ...(isString(value.format) ? { format: value.format } : {}),
    ...num("minimum"),
    ...num("maximum"),
    ...num("min_length"),
    ...num("max_length"),
  };
}

function turnStatus(value: unknown): TurnStatus {
  return isTurnStatus(value) ? value : "ok";
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
    case "auth_required":
      return isString(data.server) && isString(data.url)
        ? { kind: "auth_required", server: data.server, url: data.url }
        : { kind: "other" };
    case "auth_completed":
      return isString(data.server) ? { kind: "auth_completed", server: data.server } : { kind: "other" };
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
        const frame: ToolStartFrame = {
          type,
          turn_id: turnId,
          call_id: callId,
          name,
          server: stringOr(data.server, ""),
          tool: stringOr(data.tool, ""),
          arguments: data.arguments,
        };
        return { kind: "tool_start", frame };
      }
      break;
    case "tool_end":
      if (isString(turnId) && isString(data.call_id) && typeof data.ok === "boolean") {
        const duration = typeof data.duration_ms === "number" ? data.duration_ms : 0;
        const frame: ToolEndFrame = {
          type,
          turn_id: turnId,
          call_id: data.call_id,
          ok: data.ok,
          preview: stringOr(data.preview, ""),
          duration_ms: duration,
        };
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
        const requestId = optionalString(data.request_id);
        const callId = optionalString(data.call_id);
        return {
          kind: "error",
          frame: { error: data.error },
          code: isErrorCode(data.code) ? data.code : undefined,
          turnId: optionalString(turnId),
          clientId: optionalString(data.client_id),
          ...(requestId !== undefined ? { requestId } : {}),
          ...(callId !== undefined ? { callId } : {}),
        };
      }
      break;
    case "tool_progress":
      if (isString(turnId) && isString(data.call_id) && typeof data.progress === "number") {
        const frame: ToolProgressFrame = { type, turn_id: turnId, call_id: data.call_id, progress: data.progress };
        if (typeof data.total === "number") frame.total = data.total;
        if (isString(data.message)) frame.message = data.message;
        return { kind: "tool_progress", frame };
      }
      break;
    case "elicitation_request":
      if (isString(data.request_id) && isString(data.server) && isString(data.message) && (data.mode === "form" || data.mode === "url")) {
        const frame: ElicitationRequestFrame = {
          type,
          request_id: data.request_id,
          ...(isString(turnId) ? { turn_id: turnId } : {}),
          server: data.server,
          mode: data.mode,
          message: data.message,
          fields: Array.isArray(data.fields) ? data.fields.map(elicitationField).filter((field) => field !== undefined) : [],
          ...(isString(data.url) ? { url: data.url } : {}),
          timeout_ms: typeof data.timeout_ms === "number" ? data.timeout_ms : 0,
        };
        return { kind: "elicitation_request", frame };
      }
      break;
    case "elicitation_resolved": {
      const action = ELICITATION_ACTIONS.find((value) => value === data.action);
      const by = RESOLVED_BY.find((value) => value === data.by);
      if (isString(data.request_id) && action !== undefined && by !== undefined) {
        const frame: ElicitationResolvedFrame = {
          type,
          request_id: data.request_id,
          ...(isString(turnId) ? { turn_id: turnId } : {}),
          action,
          by,
        };
        return { kind: "elicitation_resolved", frame };
      }
      break;
    }
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
        const timeoutMs =
          typeof data.timeout_ms === "number" && Number.isFinite(data.timeout_ms) && data.timeout_ms >= 0 ? data.timeout_ms : 0;
        const frame: ApprovalRequestFrame = {
          type,
          ...(data.kind === "sampling" ? { kind: "sampling" as const } : {}),
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
        const frame: ApprovalResolvedFrame = {
          type,
          turn_id: turnId,
          call_id: data.call_id,
          approved: data.approved,
          ...(reason !== undefined ? { reason } : {}),
          by,
        };
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
  if (isString(data.error)) {
    return {
      kind: "error",
      frame: { error: data.error },
      code: isErrorCode(data.code) ? data.code : undefined,
      turnId: undefined,
      clientId: undefined,
    };
  }
  const seed = seedMessage(data);
  return seed ? { kind: "answer", frame: seed, turnId: undefined } : { kind: "other" };
}

/**
 * The call id of an answer that came too late (code `no_pending_approval`): another client
 * answered first, or the request timed out or was cancelled. Such an error is outside any turn,
 * like the refusal of a message, so it must not be taken for one.
 */
export function lateApprovalCallId(error: Pick<IncomingError, "code" | "turnId" | "callId">): string | undefined {
  if (error.turnId !== undefined || error.code !== "no_pending_approval") return undefined;
  return error.callId;
}

// ---- frames to the server ----------------------------------------------------------------------

type ApprovalFrame = Extract<ClientFrame, { type: "approval" }>;
type ElicitationFrame = Extract<ClientFrame, { type: "elicitation" }>;

/**
 * A frame the client sends, in its wire form. protocol.ts's ClientFrame is what the server parses
 * a frame into: a chat message is `{type: "chat", clientId}` there and `{message, client_id}` here.
 */
export type OutgoingFrame =
  | { message: string; client_id: string }
  | Extract<ClientFrame, { type: "cancel" | "history" }>
  // `always` goes out only when true: the server reads a missing one as false.
  | (Omit<ApprovalFrame, "always"> & { always?: true })
  | ElicitationFrame;

/** An answer to an approval request, as typed or as a flag gives it: the approval frame's fields. */
export type ApprovalAnswer = Omit<ApprovalFrame, "type" | "call_id">;

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

export function approvalFrame(callId: string, answer: ApprovalAnswer): OutgoingFrame {
  return {
    type: "approval",
    call_id: callId,
    approved: answer.approved,
    ...(answer.reason !== undefined ? { reason: answer.reason } : {}),
    ...(answer.always ? { always: true } : {}),
  };
}

// ---- our own messages --------------------------------------------------------------------------

/** A chat message as sent: `clientId` goes out as `client_id` for the server to echo. */
export interface Sent {
  text: string;
  clientId: string;
}

export function chatFrame(sent: Sent): OutgoingFrame {
  return { message: sent.text, client_id: sent.clientId };
}

/**
 * Is this turn_start the turn of our message? A streaming socket sees every turn of the user,
 * other tabs' too. Servers that echo `client_id` say so exactly; for the others it is the first
 * turn, after we sent, whose input is our text.
 */
export function startsOwnTurn(start: IncomingTurnStart, sent: Sent): boolean {
  return start.clientId !== undefined ? start.clientId === sent.clientId : start.frame.input === sent.text;
}

/** Is this error the refusal of our message (before any turn of it started)? */
export function refusesOwnMessage(error: IncomingError, sent: Sent): boolean {
  if (error.turnId !== undefined || error.requestId !== undefined || lateApprovalCallId(error) !== undefined) return false;
  // Without a client_id, an error outside any turn can only be about a frame we sent.
  return error.clientId === undefined || error.clientId === sent.clientId;
}
