// Human in the loop: tool calls that wait for a person's approval. One ApprovalDesk per session
// owns the pending requests and their timers; the first answer from any of the user's streaming
// sockets wins, no answer in time is a denial, and a cancel denies whatever is still waiting.
import type { ApprovalDecision, ToolStart } from "../agent/types.ts";
import type { McpServerConfig } from "../config.ts";
import type { Logger } from "../log.ts";
import { approvalRequestFrame, approvalResolvedFrame, type ApprovalRequestFrame, type ApprovalResolvedFrame } from "../protocol.ts";

/** Pure: does this server's `require_approval` setting cover this tool? */
export function requiresApproval(setting: McpServerConfig["require_approval"], tool: string): boolean {
  if (setting === "never") return false;
  if (setting === "always") return true;
  return setting.includes(tool);
}

/** Which tool calls wait for a person, from each server's `require_approval`. */
export class ApprovalPolicy {
  readonly #servers: Readonly<Record<string, McpServerConfig>>;

  constructor(servers: Readonly<Record<string, McpServerConfig>>) {
    this.#servers = servers;
  }

  needsApproval(server: string, tool: string): boolean {
    const entry = this.#servers[server];
    return entry !== undefined && requiresApproval(entry.require_approval, tool);
  }
}

interface Pending {
  turnId: string;
  call: ToolStart;
  resolve: (decision: ApprovalDecision) => void;
  timer: NodeJS.Timeout;
}

export interface ApprovalDeskOptions {
  timeoutMs: number;
  log: Logger;
  logFields: () => Record<string, unknown>;
  /** Whether anyone can answer now: a streaming socket of the user is open. */
  canAsk: () => boolean;
  /** Sends a frame to every streaming socket of the user (and keeps it for a resumed page). */
  broadcast: (frame: ApprovalRequestFrame | ApprovalResolvedFrame) => void;
}

export class ApprovalDesk {
  readonly #pending = new Map<string, Pending>();
  /** Model-visible tool names a person allowed for the rest of the session. */
  readonly #alwaysAllowed = new Set<string>();
  readonly #options: ApprovalDeskOptions;

  constructor(options: ApprovalDeskOptions) {
    this.#options = options;
  }

  /** Waits for a person's answer to a call; resolves (never rejects) with the decision. */
  request(turnId: string, call: ToolStart & { kind?: "sampling" }, signal?: AbortSignal): Promise<ApprovalDecision> {
    if (this.#alwaysAllowed.has(call.name)) {
      this.#record(call, true, "session", "allowed for the rest of the session");
      return Promise.resolve({ approved: true });
    }
    if (!this.#options.canAsk()) {
      // A seed-style socket cannot answer: deny at once rather than hang the turn.
      const reason =
        "denied: this tool call needs a person's approval and no client that can give it is connected " +
        "(approvals need a streaming socket, /ws/<user_id>?stream=1, such as the chat page)";
      this.#record(call, false, "no-client", reason);
      return Promise.resolve({ approved: false, reason });
    }
    // Already cancelled (a sibling call's failure, a deadline): an abort listener would never fire.
    if (signal?.aborted) {
      this.#record(call, false, "cancel", "denied: the turn was cancelled");
      return Promise.resolve({ approved: false, reason: "denied: the turn was cancelled" });
    }
    // The call id is the server's own (agent.ts assigns it), so two pending calls never share one.
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const seconds = Number((this.#options.timeoutMs / 1000).toFixed(1));
        this.#settle(call.callId, false, `denied: nobody answered the approval request within ${seconds} s`, "timeout");
      }, this.#options.timeoutMs);
      timer.unref();
      this.#pending.set(call.callId, { turnId, call, resolve, timer });
      signal?.addEventListener("abort", () => this.#settle(call.callId, false, "denied: the turn was cancelled", "cancel"), { once: true });
      this.#options.broadcast(approvalRequestFrame(turnId, call, this.#options.timeoutMs));
    });
  }

  /** A person's answer; false when there is no such pending call (already answered, timed out). */
  answer(callId: string, approved: boolean, reason: string | undefined, always: boolean, socketId: number): boolean {
    const pending = this.#pending.get(callId);
    if (!pending) return false;
    if (approved && always) this.#alwaysAllowed.add(pending.call.name);
    const text = approved ? reason : `denied by the user: ${reason?.trim() || "no reason given"}`;
    return this.#settle(callId, approved, text, "user", `socket ${socketId}${always ? " (always allow)" : ""}`);
  }

  #settle(callId: string, approved: boolean, reason: string | undefined, by: ApprovalResolvedFrame["by"], who: string = by): boolean {
    const pending = this.#pending.get(callId);
    if (!pending) return false;
    this.#pending.delete(callId);
    clearTimeout(pending.timer);
    this.#record(pending.call, approved, who, reason);
    this.#options.broadcast(approvalResolvedFrame(pending.turnId, callId, approved, reason, by));
    pending.resolve(approved ? { approved: true } : { approved: false, reason: reason ?? "denied" });
    return true;
  }

  /** Every decision is logged: user, tool, decision, who answered, when (the line's timestamp). */
  #record(call: ToolStart, approved: boolean, by: string, reason: string | undefined): void {
    this.#options.log.info("approval", {
      ...this.#options.logFields(),
      call_id: call.callId,
      tool: call.name,
      server: call.server,
      decision: approved ? "approved" : "denied",
      by,
      ...(reason ? { reason } : {}),
    });
  }

  /** Denies whatever of this turn still waits (the turn ended: nothing may outlive it). */
  settleTurn(turnId: string, reason: string): void {
    for (const [callId, pending] of [...this.#pending]) if (pending.turnId === turnId) this.#settle(callId, false, reason, "cancel");
  }

  /** "Always allow" lasts as long as the conversation: New chat forgets it. */
  forgetAlwaysAllowed(): void {
    this.#alwaysAllowed.clear();
  }

  /** Denies everything still waiting (the session is closing). */
  close(): void {
    for (const callId of [...this.#pending.keys()]) this.#settle(callId, false, "denied: the session ended", "cancel");
  }
}
