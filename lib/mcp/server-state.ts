// What a user is told about their MCP servers: the `servers` frame's entries (pure), the last
// lines of a child's stderr kept for its failure message, and the watch that tells a session
// when any of its servers changed.
import type { ServerInfo, ServerStatus } from "../protocol.ts";

/** The last `maxLines` lines a child wrote to stderr, each cut at `maxChars`: bounded whatever it writes. */
export class StderrTail {
  readonly #maxLines: number;
  readonly #maxChars: number;
  #lines: string[] = [];

  constructor(maxLines = 10, maxChars = 300) {
    this.#maxLines = maxLines;
    this.#maxChars = maxChars;
  }

  push(line: string): void {
    const trimmed = line.trimEnd();
    if (trimmed === "") return;
    this.#lines.push(trimmed.length > this.#maxChars ? `${trimmed.slice(0, this.#maxChars)}…` : trimmed);
    if (this.#lines.length > this.#maxLines) this.#lines.shift();
  }

  /** Forgotten at each start: a failure shows what this attempt wrote, not the one before. */
  clear(): void {
    this.#lines = [];
  }

  lines(): string[] {
    return [...this.#lines];
  }
}

/** A failure's message with what the child wrote last, so neither the user nor the operator needs debug logs. */
export function withStderr(reason: string, lines: readonly string[]): string {
  if (lines.length === 0) return reason;
  return `${reason}; its stderr ended with: ${lines.join(" | ")}`;
}

/** One server's entry of the `servers` frame. */
export function serverStatus(info: ServerInfo, extra: { needsAuth?: boolean; userAdded?: boolean } = {}): ServerStatus {
  return {
    name: info.name,
    transport: info.transport,
    state: info.state,
    tools: info.tools,
    ...(info.error ? { error: info.error } : {}),
    needs_auth: extra.needsAuth ?? false,
    user_added: extra.userAdded ?? false,
  };
}

/**
 * Listeners of one connection's changes (state, tool count, error). A shared connection serves
 * every session, so each hub adds its listener and removes it when it closes.
 */
export class ChangeListeners {
  readonly #listeners = new Set<() => void>();

  add(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit(): void {
    for (const listener of this.#listeners) listener();
  }
}

/**
 * Coalesces bursts (every server of a hub starting at once) into one call per tick, and calls
 * only when what the user would see changed.
 */
export class ServersWatch {
  readonly #render: () => ServerStatus[];
  readonly #send: (servers: ServerStatus[]) => void;
  #scheduled = false;
  #last = "";

  constructor(render: () => ServerStatus[], send: (servers: ServerStatus[]) => void) {
    this.#render = render;
    this.#send = send;
  }

  changed(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      const servers = this.#render();
      const key = JSON.stringify(servers);
      if (key === this.#last) return;
      this.#last = key;
      this.#send(servers);
    });
  }
}
