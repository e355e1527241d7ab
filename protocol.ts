// The one definition of the wire protocol on /ws/<user_id>.
// Frames in are parsed here (nothing else reads raw socket data); frames out are built here
// (nothing else writes JSON to a socket). The seed frames keep the original's exact key order.

export const USER_ID_RULE = "user_id must be 1-64 characters of [A-Za-z0-9_.-] and not '.' or '..'";
const USER_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

export function isValidUserId(userId: string): boolean {
  return USER_ID_PATTERN.test(userId) && userId !== "." && userId !== "..";
}

// ---- client -> server ----------------------------------------------------------------------

export type ClientFrame =
  /** A chat message: the seed's only frame. */
  | { type: "chat"; message: string }
  /** Missing or blank `message`: the original silently ignores these. */
  | { type: "ignored" };

export type ParsedClientFrame = { ok: true; frame: ClientFrame } | { ok: false; error: string };

function isRecord(value: unknown): value is Record<string, unknown> {
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
  const message = data.message;
  if (message === undefined || message === null) return { ok: true, frame: { type: "ignored" } };
  if (typeof message !== "string") {
    return { ok: false, error: `"message" must be a string, got ${describeJson(message)}` };
  }
  if (message.trim() === "") return { ok: true, frame: { type: "ignored" } };
  return { ok: true, frame: { type: "chat", message } };
}

function describeJson(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return `a ${typeof value}`;
}

// ---- server -> client ----------------------------------------------------------------------

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
export interface ErrorFrame {
  error: string;
}
export type ServerFrame = WelcomeFrame | AnswerFrame | ErrorFrame;

export function welcomeFrame(userId: string, sessionId: string): WelcomeFrame {
  return { message: `Welcome! You are connected as user: ${userId}`, user_id: userId, session_id: sessionId };
}

export function answerFrame(answer: string, userId: string, sessionId: string): AnswerFrame {
  return { message: answer, user_id: userId, session_id: sessionId };
}

export function errorFrame(error: string): ErrorFrame {
  return { error };
}

/** A failure during a turn, worded as the original words it. */
export function turnErrorFrame(reason: string): ErrorFrame {
  return { error: `An error occurred: ${reason}` };
}

export const BINARY_FRAME_ERROR = 'Binary frames are not supported: send text frames with JSON like {"message": "..."}';

export function encodeFrame(frame: ServerFrame): string {
  return JSON.stringify(frame);
}
