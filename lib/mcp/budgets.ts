// What one MCP server may send us, stdio and remote alike: each message is held to a byte cap as
// it arrives (a stdio line, an HTTP body, an SSE line) before it is parsed; notifications (logs,
// progress, list changes) are rate-limited per connection, and what a log carries is cut. A
// message over its cap fails the call it answers, with the key in the message.
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { cappedFetch, type FetchLike } from "../capped-fetch.ts";

export interface McpBudgets {
  /** One message from a server (limits.mcp_max_message_bytes). */
  maxMessageBytes: number;
  /** Notifications a server may send, on average per second, and at once (limits.mcp_notifications_per_second, _burst). */
  notificationsPerSecond: number;
  notificationBurst: number;
  /** A server log's data is cut to this many characters of JSON (limits.mcp_max_log_chars). */
  maxLogChars: number;
  /** Dropped notifications and oversized messages, counted by the owner (a metric). */
  onDropped?: (server: string, reason: "rate" | "size") => void;
}

export const DEFAULT_MCP_BUDGETS: McpBudgets = {
  // Below the SDK stdio ReadBuffer's own 10 MB, so ours (which fails the waiting calls with the reason) acts first.
  maxMessageBytes: 8 * 1024 * 1024,
  notificationsPerSecond: 20,
  notificationBurst: 200,
  maxLogChars: 2000,
};

/** The error a call gets when the server's answer to it passed the cap. */
export function messageTooLargeText(server: string, maxBytes: number): string {
  return `MCP server "${server}" sent a message larger than ${maxBytes} bytes (limits.mcp_max_message_bytes)`;
}

function errorAnswer(id: string, message: string): string {
  // -32603, internal error: the answer existed but could not be taken.
  return JSON.stringify({ jsonrpc: "2.0", id: JSON.parse(id) as unknown, error: { code: -32603, message } });
}

/**
 * The `fetch` of a remote server's transport. A whole JSON body past the cap becomes an error
 * answer to the request it answers (our own POST body names its id); an SSE line past it is
 * skipped, and on the stream that answers a POST replaced by an error answer to that POST's
 * request, so the call fails at once with the reason instead of waiting for its timeout. (On a
 * GET stream, as the legacy SSE transport's, the line is only skipped: which request it
 * answered cannot be told safely, and that call ends at its timeout.)
 */
export function mcpFetch(server: string, budgets: McpBudgets, inner?: FetchLike): FetchLike {
  const text = messageTooLargeText(server, budgets.maxMessageBytes);
  return cappedFetch(
    {
      maxBytes: budgets.maxMessageBytes,
      tooLarge: () => new Error(text),
      replaceBody: (request) => {
        budgets.onDropped?.(server, "size");
        const id = requestId(request?.body);
        return id === undefined ? undefined : errorAnswer(id, text);
      },
      replaceLine: (request) => {
        budgets.onDropped?.(server, "size");
        const id = requestId(request?.body);
        return id === undefined ? "" : `data: ${errorAnswer(id, text)}`;
      },
    },
    inner,
  );
}

/** The id of the one JSON-RPC request we POSTed (ours, so small), as JSON text. */
function requestId(body: unknown): string | undefined {
  if (typeof body !== "string") return undefined;
  try {
    const message: unknown = JSON.parse(body);
    if (typeof message === "object" && message !== null && "id" in message) {
      const id = message.id;
      if (typeof id === "number" || typeof id === "string") return JSON.stringify(id);
    }
  } catch {
    // Not JSON: not a request of ours that could be answered.
  }
  return undefined;
}

/** A token bucket: `take(now)` says whether one more may pass. Pure but for its own state. */
export class RateBucket {
  readonly #perMs: number;
  readonly #burst: number;
  #tokens: number;
  #at: number | undefined;

  constructor(perSecond: number, burst: number) {
    this.#perMs = perSecond / 1000;
    this.#burst = burst;
    this.#tokens = burst;
  }

  take(now: number): boolean {
    if (this.#at !== undefined) this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#at) * this.#perMs);
    this.#at = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/**
 * Rate-limits the notifications a transport delivers (requests and answers pass): installed on
 * `start`, after the SDK set its `onmessage`, so it holds from the first message on. Drops are
 * counted, and reported once per second with their number.
 */
export function limitNotifications(transport: Transport, server: string, budgets: McpBudgets, onDrops: (count: number) => void): void {
  const bucket = new RateBucket(budgets.notificationsPerSecond, budgets.notificationBurst);
  const start = transport.start.bind(transport);
  let dropped = 0;
  let reportedAt = 0;
  transport.start = () => {
    const deliver = transport.onmessage;
    transport.onmessage = (message: JSONRPCMessage, extra) => {
      const now = Date.now();
      if ("method" in message && !("id" in message) && !bucket.take(now)) {
        dropped++;
        budgets.onDropped?.(server, "rate");
        if (now - reportedAt >= 1000) {
          reportedAt = now;
          onDrops(dropped);
          dropped = 0;
        }
        return;
      }
      deliver?.(message, extra);
    };
    return start();
  };
}

/** A server log's data as we keep it: JSON cut to `maxChars`. */
export function cutLogData(data: unknown, maxChars: number): unknown {
  if (typeof data === "string") return data.length <= maxChars ? data : `${data.slice(0, maxChars)}… [cut: ${data.length} characters]`;
  let text: string;
  try {
    text = JSON.stringify(data) ?? "";
  } catch {
    return "[unserializable]";
  }
  return text.length <= maxChars ? data : `${text.slice(0, maxChars)}… [cut: ${text.length} characters]`;
}
