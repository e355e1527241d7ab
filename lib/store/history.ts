// A session's conversation: what the model sees (OpenAI messages) plus, per entry, what a
// person needs to see it again (which turn, how it ended, which tool, whether the tool worked).
import type { ChatMessage } from "../agent/types.ts";
import { isRecord, isTurnStatus, preview, thumbnailUrls, toolCallFields, type HistoryItem, type TurnStatus } from "../protocol.ts";

export interface HistoryEntry {
  turnId: string;
  message: ChatMessage;
  /** On the user message of a turn: how the turn ended. */
  status?: TurnStatus;
  /** On tool results: where the call went and whether it worked. */
  tool?: { name: string; server: string; tool: string; ok: boolean; durationMs?: number };
}

function isToolMeta(value: unknown): value is NonNullable<HistoryEntry["tool"]> {
  return (
    isRecord(value) &&
    typeof value.name === "string" &&
    typeof value.server === "string" &&
    typeof value.tool === "string" &&
    typeof value.ok === "boolean" &&
    (value.durationMs === undefined || typeof value.durationMs === "number")
  );
}

function isChatMessage(value: unknown): value is ChatMessage {
  return isRecord(value) && typeof value.role === "string";
}

/** A stored entry read back (from SQLite or Redis): checked field by field, never trusted as is. */
export function storedEntry(turnId: string, message: unknown, status: unknown, tool: unknown): HistoryEntry | undefined {
  if (!isChatMessage(message)) return undefined;
  return { turnId, message, ...(isTurnStatus(status) ? { status } : {}), ...(isToolMeta(tool) ? { tool } : {}) };
}

/**
 * The newest entries that fit in `maxMessages`, starting at a user message: a cut never leaves a
 * tool result without the assistant message that called it (OpenAI rejects such a history).
 */
export function trimHistory<T extends { message: ChatMessage }>(entries: readonly T[], maxMessages: number): T[] {
  if (entries.length <= maxMessages) return [...entries];
  let start = entries.length - maxMessages;
  while (start < entries.length && entries[start]?.message.role !== "user") start++;
  return entries.slice(start);
}

function textOf(content: ChatMessage["content"]): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content.map((part) => ("text" in part && typeof part.text === "string" ? part.text : "")).join("");
}

/**
 * The images tools returned, by call id, from the user messages of image parts that follow a
 * step's tool results (agent.ts imageAttachments: a text part "… (call <id>):" before each call's images).
 */
function attachedImages(entries: readonly HistoryEntry[]): Map<string, string[]> {
  const byCall = new Map<string, string[]>();
  for (const { message } of entries) {
    if (message.role !== "user" || typeof message.content === "string") continue;
    let callId: string | undefined;
    for (const part of message.content) {
      if (part.type === "text") callId = /\(call (\S+)\):$/.exec(part.text)?.[1];
      else if (part.type === "image_url" && callId !== undefined) byCall.set(callId, [...(byCall.get(callId) ?? []), part.image_url.url]);
    }
  }
  return byCall;
}

/** The conversation as the `history` frame shows it: tool calls paired with their results. */
export function historyItems(entries: readonly HistoryEntry[]): HistoryItem[] {
  const results = new Map<string, HistoryEntry>();
  for (const entry of entries) {
    if (entry.message.role === "tool") results.set(entry.message.tool_call_id, entry);
  }
  const images = attachedImages(entries);
  const items: HistoryItem[] = [];
  for (const entry of entries) {
    const { message, turnId } = entry;
    // A user message with parts is the images tools returned (agent.ts imageAttachments), not something the user typed.
    if (message.role === "user" && typeof message.content !== "string") continue;
    if (message.role === "user") {
      items.push({ role: "user", turn_id: turnId, content: textOf(message.content), status: entry.status ?? "ok" });
    } else if (message.role === "assistant") {
      const content = textOf(message.content ?? null);
      // Text the model wrote before its tool calls comes first, as it was streamed.
      if (content) items.push({ role: "assistant", turn_id: turnId, content });
      for (const call of message.tool_calls ?? []) {
        if (call.type !== "function") continue;
        const result = results.get(call.id);
        // The model reads "Error: …" for a failed tool; people see the result as tool_end showed it.
        const resultText = result ? textOf(result.message.content).replace(result.tool?.ok === false ? /^Error: / : /^$/, "") : "";
        items.push({
          role: "tool",
          ...toolCallFields(turnId, {
            callId: call.id,
            name: call.function.name,
            server: result?.tool?.server ?? "",
            tool: result?.tool?.tool ?? call.function.name,
            arguments: call.function.arguments,
          }),
          ok: result?.tool?.ok ?? false,
          preview: preview(resultText),
          ...(result?.tool?.durationMs !== undefined ? { duration_ms: result.tool.durationMs } : {}),
          ...(images.has(call.id) ? { images: thumbnailUrls(images.get(call.id) ?? []) } : {}),
        });
      }
    }
  }
  return items;
}

/**
 * Pure: one page of the history, oldest first: at most `limit` items (and about `maxChars`
 * characters of JSON, always at least one) before `before` (an item index, or the turn_id whose
 * first item ends the page), or the newest. `start` is the index of its first item.
 */
export function historyPage(
  all: readonly HistoryItem[],
  before: number | string | undefined,
  limit: number,
  maxChars: number,
): { items: HistoryItem[]; start: number; total: number } {
  let end = all.length;
  if (typeof before === "number") end = Math.min(before, all.length);
  else if (typeof before === "string") {
    const at = all.findIndex((item) => item.turn_id === before);
    end = at === -1 ? 0 : at;
  }
  let start = end;
  let chars = 0;
  const items: HistoryItem[] = [];
  while (start > 0 && end - start < limit) {
    const item = all[start - 1] as HistoryItem;
    const size = JSON.stringify(item).length;
    // An item bigger than a whole page is sent cut, never whole: it would stop the page from loading.
    const fitted = size > maxChars ? cutItem(item, maxChars) : item;
    chars += size > maxChars ? JSON.stringify(fitted).length : size;
    if (chars > maxChars && start < end) break;
    items.unshift(fitted);
    start--;
  }
  return { items, start, total: all.length };
}

/** An item cut to about `maxChars` of JSON: its text, its arguments and its images, with a note naming the key. */
export function cutItem(item: HistoryItem, maxChars: number): HistoryItem {
  const room = Math.max(100, Math.floor(maxChars / 2));
  const cut = (text: string) =>
    text.length <= room
      ? text
      : `${text.slice(0, room)} [cut: ${text.length} characters, only the first ${room} are shown (limits.history_page_chars)]`;
  if (item.role !== "tool") return { ...item, content: cut(item.content) };
  const args = typeof item.arguments === "string" ? item.arguments : JSON.stringify(item.arguments);
  const { images: _images, ...rest } = item;
  return {
    ...rest,
    name: item.name.slice(0, 200),
    tool: item.tool.slice(0, 200),
    arguments: args.length > room ? cut(args) : item.arguments,
  };
}
