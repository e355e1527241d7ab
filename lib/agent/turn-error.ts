// How a turn fails: TurnError carries what of the turn is safe to keep, and what it cost; and the
// two failure texts the loop words itself (no API key, a conversation too long for the window).
import { emptyUsage } from "../model/usage.ts";
import type { TokenUsage } from "../protocol.ts";
import type { ChatMessage } from "./types.ts";

export const NO_API_KEY_MESSAGE =
  "no OpenAI API key is set. Put it in mcp_agent.secrets.yaml as openai.api_key " +
  "(copy mcp_agent.secrets.yaml.example), or set the OPENAI_API_KEY environment variable, then restart the server";

export const CONTEXT_FULL_MESSAGE =
  "this conversation no longer fits the model's context window, even with older turns left out and long tool results shortened. " +
  'Start a new chat (the "New chat" button, or send {"type":"reset"}), or send a shorter message; ' +
  "if the model allows more, raise agent.max_context_tokens";

/** A turn that failed; `messages` is the part of the turn that is safe to keep in the history. */
export class TurnError extends Error {
  readonly messages: ChatMessage[];
  /** True when the turn ended because its signal was aborted (a cancel), not because of a fault. */
  readonly cancelled: boolean;
  /** What the turn's model calls cost before it failed (they count against quotas too). */
  readonly usage: TokenUsage;
  constructor(message: string, messages: ChatMessage[], options: { cause?: unknown; cancelled?: boolean; usage?: TokenUsage } = {}) {
    super(message, { cause: options.cause });
    this.name = "TurnError";
    this.messages = messages;
    this.cancelled = options.cancelled ?? false;
    this.usage = options.usage ?? emptyUsage();
  }
}
