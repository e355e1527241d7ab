// The history cap: pure, so what is kept can be tested in microseconds.
import type { ChatMessage } from "./agent.ts";

/**
 * The newest messages that fit in `maxMessages`, starting at a user message: a cut never leaves
 * a tool result without the assistant message that called it (OpenAI rejects such a history).
 */
export function trimHistory(messages: readonly ChatMessage[], maxMessages: number): ChatMessage[] {
  if (messages.length <= maxMessages) return [...messages];
  let start = messages.length - maxMessages;
  while (start < messages.length && messages[start]?.role !== "user") start++;
  return messages.slice(start);
}
