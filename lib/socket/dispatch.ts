// What a frame from a socket asks of the user's session. Parsing is protocol.ts's; this decides.
import type { RawData } from "ws";
import { publicReason } from "../session/public-reason.ts";
import type { Config } from "../config.ts";
import type { Logger, Redactor } from "../log.ts";
import type { MetricsRecorder } from "../metrics/metrics.ts";
import type { Peer } from "../session/fanout.ts";
import {
  BINARY_FRAME_ERROR,
  errorFrame,
  historyFrame,
  parseClientFrame,
  refusalFrame,
  streamErrorFrame,
  welcomeFrame,
  type AttachmentRef,
  type ClientFrame,
  type ElicitationAction,
  type ElicitationValue,
  type HistoryItem,
  type Refusal,
  type ServerClientFrame,
} from "../protocol.ts";

/** What a New chat did: refused as a whole, or done, with what of it could not be done. */
export type ResetOutcome = ({ ok: false } & Refusal) | { ok: true; workspaceCleared: boolean; notes: string[] };

/** What a socket's frames may ask of its user's session (UserSession in session.ts). */
export interface SocketSession {
  readonly userId: string;
  readonly sessionId: string;
  submit(
    peer: Peer,
    text: string,
    clientId?: string,
    now?: number,
    attachments?: AttachmentRef[],
  ): { ok: true; turnId: string } | ({ ok: false } & Refusal);
  cancel(): boolean;
  /** Brings the history up to date before it is shown. */
  refresh(): Promise<void>;
  /** One page of the history: at most `limit` items (about `maxChars` characters) before `before`, or the newest. */
  historyPage(before: number | string | undefined, limit: number, maxChars: number): { items: HistoryItem[]; start: number; total: number };
  /** A `history` request costs a token of its own rate limit. */
  takeHistoryToken(): { ok: true } | ({ ok: false } & Refusal);
  reset(clearWorkspace: boolean): Promise<ResetOutcome>;
  answerApproval(callId: string, approved: boolean, reason: string | undefined, always: boolean, socketId: number): boolean;
  /** An answer to an elicitation_request; why not, when it was not taken. */
  answerElicitation(
    requestId: string,
    action: ElicitationAction,
    content: Record<string, ElicitationValue> | undefined,
    socketId: number,
  ): Refusal | undefined;
  /** A frame about one of the user's MCP servers (retry, connect, disconnect, add, remove). */
  serverAction(peer: Peer, frame: ServerClientFrame): void;
}

export interface DispatchContext {
  log: Logger;
  limits: Config["limits"];
  redactor: Redactor;
  metrics: MetricsRecorder;
}

/**
 * The longest client frame worth parsing, in bytes: a chat message at limits.max_message_chars,
 * every character JSON-escaped (6 bytes), plus room for the other fields; never past ws's
 * maxPayload. A longer frame is refused from its length alone, before JSON.parse sees it.
 */
export function maxFrameBytes(limits: Config["limits"]): number {
  return Math.min(
    limits.max_payload_bytes,
    limits.max_message_chars * 6 + Math.ceil((limits.max_inline_attachment_bytes * 4) / 3) + 64 * 1024,
  );
}

/** What a frame did to its socket's count of refused frames (limits.max_refused_frames_per_socket). */
export type FrameVerdict = "refused" | undefined;

export function dispatchFrame(
  session: SocketSession,
  peer: Peer,
  data: RawData,
  isBinary: boolean,
  context: DispatchContext,
): FrameVerdict {
  const { limits } = context;
  if (isBinary) {
    peer.send(errorFrame("invalid_frame", BINARY_FRAME_ERROR));
    return "refused";
  }
  const bytes = rawLength(data);
  if (bytes > maxFrameBytes(limits)) {
    context.metrics.refused("frame_too_large");
    peer.send(
      errorFrame(
        "frame_too_large",
        `Frame too large: ${bytes} bytes, more than a message of limits.max_message_chars (${limits.max_message_chars} characters) can take; it was not read`,
      ),
    );
    return "refused";
  }
  const parsed = parseClientFrame(rawText(data));
  if (!parsed.ok) {
    peer.send(errorFrame("invalid_frame", parsed.error));
    return "refused";
  }
  const frame = parsed.frame;
  if (frame.type === "chat" && frame.message.length > limits.max_message_chars) {
    const refusal: Refusal = {
      code: "message_too_long",
      error: `Message too long: ${frame.message.length} characters, the limit is ${limits.max_message_chars} (limits.max_message_chars)`,
    };
    context.log.warn("message_refused", { user_id: session.userId, socket: peer.id, code: refusal.code, reason: refusal.error });
    context.metrics.refused(refusal.code);
    peer.send(refusalFrame(peer.streaming, refusal, frame.clientId));
    return "refused";
  }
  handleFrame(session, peer, frame, context);
  return undefined;
}

function handleFrame(session: SocketSession, peer: Peer, frame: ClientFrame, context: DispatchContext): void {
  const { log, limits } = context;
  switch (frame.type) {
    case "ignored":
      return;
    case "chat": {
      const refuse = (refusal: Refusal) => {
        log.warn("message_refused", { user_id: session.userId, socket: peer.id, code: refusal.code, reason: refusal.error });
        context.metrics.refused(refusal.code);
        peer.send(refusalFrame(peer.streaming, refusal, frame.clientId));
      };
      if (frame.message.length > limits.max_message_chars) {
        return refuse({
          code: "message_too_long",
          error: `Message too long: ${frame.message.length} characters, the limit is ${limits.max_message_chars} (limits.max_message_chars)`,
        });
      }
      const submitted = session.submit(peer, frame.message, frame.clientId, undefined, frame.attachments);
      if (!submitted.ok) refuse(submitted);
      return;
    }
    case "cancel":
      session.cancel();
      return;
    case "history": {
      const allowed = session.takeHistoryToken();
      if (!allowed.ok) return peer.send(refusalFrame(peer.streaming, allowed));
      const limit = Math.min(frame.limit ?? limits.history_page_items, limits.history_max_page_items);
      // Turns that ran on other instances are read from the store first.
      void session
        .refresh()
        .catch((error: unknown) => log.warn("history_refresh_failed", { user_id: session.userId, error }))
        .then(() => {
          const page = session.historyPage(frame.before, limit, limits.history_page_chars);
          peer.send(historyFrame(session.userId, session.sessionId, page.items, page));
        });
      return;
    }
    case "reset":
      void reset(session, peer, frame.workspace, context);
      return;
    case "approval":
      if (!peer.streaming)
        return peer.send(errorFrame("streaming_required", "approvals are answered from a streaming socket (/ws/<user_id>?stream=1)"));
      if (!session.answerApproval(frame.call_id, frame.approved, frame.reason, frame.always, peer.id)) {
        peer.send(
          streamErrorFrame(
            "no_pending_approval",
            `no approval is waiting for call ${frame.call_id} (it was already answered, timed out or cancelled)`,
            { callId: frame.call_id },
          ),
        );
      }
      return;
    case "elicitation": {
      if (!peer.streaming)
        return peer.send(errorFrame("streaming_required", "elicitations are answered from a streaming socket (/ws/<user_id>?stream=1)"));
      const problem = session.answerElicitation(frame.request_id, frame.action, frame.content, peer.id);
      // The form stays open on an invalid answer: the error names the field.
      if (problem) peer.send(streamErrorFrame(problem.code, problem.error, { requestId: frame.request_id }));
      return;
    }
    case "server_retry":
    case "server_connect":
    case "server_disconnect":
    case "server_add":
    case "server_remove":
      if (!peer.streaming)
        return peer.send(errorFrame("streaming_required", "server frames are sent from a streaming socket (/ws/<user_id>?stream=1)"));
      return session.serverAction(peer, frame);
    default:
      return frame satisfies never;
  }
}

async function reset(session: SocketSession, asker: Peer, clearWorkspace: boolean, { redactor, log }: DispatchContext): Promise<void> {
  let outcome;
  try {
    outcome = await session.reset(clearWorkspace);
  } catch (error) {
    log.error("session_reset_failed", { user_id: session.userId, error });
    return asker.send(errorFrame("reset_failed", `Reset failed: ${redactor.redact(publicReason(error))}`));
  }
  // Streaming sockets heard the outcome with every other tab; a seed-style asker hears it here.
  if (!outcome.ok) {
    if (!asker.streaming) asker.send(errorFrame(outcome.code, outcome.error));
    return;
  }
  // A seed-style socket that asked learns its new session_id from a fresh welcome.
  if (!asker.streaming) asker.send(welcomeFrame(session.userId, session.sessionId));
}

function rawLength(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((sum, part) => sum + part.length, 0);
  return data instanceof ArrayBuffer ? data.byteLength : data.length;
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  return Buffer.from(data instanceof ArrayBuffer ? new Uint8Array(data) : data).toString("utf8");
}
