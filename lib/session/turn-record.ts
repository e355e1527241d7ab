// The store's side of one turn: its messages become history entries (with each tool result's
// server, tool and outcome) and are written as they happen, so a server killed mid-turn loses at
// most the unfinished step (the user's message is kept, as `running`, and reads back `interrupted`).
import type { ChatMessage, ToolEnd, ToolStart } from "../agent/types.ts";
import type { HistoryEntry } from "../store/history.ts";
import type { Fence, SessionRecord, SessionStore } from "../store/store.ts";
import type { TurnStatus } from "../protocol.ts";

type ToolMeta = NonNullable<HistoryEntry["tool"]>;

export class TurnRecord {
  readonly #store: SessionStore;
  readonly #sessionId: string;
  readonly #turnId: string;
  readonly #fence: Fence | undefined;
  readonly #tools = new Map<string, ToolMeta>();
  /** Messages of this turn already in the store. */
  #stored = 0;

  constructor(store: SessionStore, sessionId: string, turnId: string, fence: Fence | undefined) {
    this.#store = store;
    this.#sessionId = sessionId;
    this.#turnId = turnId;
    this.#fence = fence;
  }

  toolStarted(call: ToolStart): void {
    this.#tools.set(call.callId, { name: call.name, server: call.server, tool: call.tool, ok: false });
  }

  toolEnded(call: ToolEnd): void {
    const meta = this.#tools.get(call.callId);
    if (!meta) return;
    meta.ok = call.ok;
    meta.durationMs = call.durationMs;
  }

  entries(messages: readonly ChatMessage[], status: TurnStatus): HistoryEntry[] {
    return messages.map((message): HistoryEntry => {
      const tool = message.role === "tool" ? this.#tools.get(message.tool_call_id) : undefined;
      return {
        turnId: this.#turnId,
        message,
        ...(message.role === "user" && typeof message.content === "string" ? { status } : {}),
        ...(tool ? { tool } : {}),
      };
    });
  }

  /** Writes messages the turn completed (the user's message, then each finished step). */
  async append(messages: readonly ChatMessage[]): Promise<void> {
    await this.#store.append(this.#sessionId, this.entries(messages, "running"), this.#fence);
    this.#stored += messages.length;
  }

  /** The end of the turn in one write, before any answer is sent; returns the turn's entries. */
  async end(messages: readonly ChatMessage[], status: TurnStatus, record: SessionRecord): Promise<HistoryEntry[]> {
    const entries = this.entries(messages, status);
    await this.#store.endTurn(this.#sessionId, entries.slice(this.#stored), this.#turnId, status, record, this.#fence);
    this.#stored = entries.length;
    return entries;
  }
}
