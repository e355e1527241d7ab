// A user's model calls as they are counted: each call in the metrics and its usage in the store
// (where the daily quota reads it), whoever made it — a turn or an MCP server's sampling request —
// and the quota's decision before a new one starts.
import type { ModelCall } from "../agent/types.ts";
import type { Logger, Redactor } from "../log.ts";
import type { MetricsRecorder } from "../metrics/metrics.ts";
import { quotaDecision, utcDay } from "../model/usage.ts";
import type { Refusal } from "../protocol.ts";
import type { SessionStore } from "../store/store.ts";

export interface UsageMeterOptions {
  userId: string;
  store: SessionStore;
  metrics: MetricsRecorder;
  /** Model tokens the user may use per UTC day (limits.tokens_per_day); undefined: no quota. */
  tokensPerDay: number | undefined;
  log: Logger;
  redactor: Redactor;
}

export class UsageMeter {
  readonly #options: UsageMeterOptions;

  constructor(options: UsageMeterOptions) {
    this.#options = options;
  }

  /**
   * Why no model call may start now: the daily quota is spent, or cannot be read (a limit must
   * not be bypassed by a store outage). Undefined when one may. A refusal is counted in the metrics.
   */
  async refusal(now = Date.now()): Promise<Refusal | undefined> {
    const { tokensPerDay, store, metrics, redactor } = this.#options;
    if (tokensPerDay === undefined) return undefined;
    let refusal: Refusal;
    try {
      const decision = quotaDecision((await store.usage(this.#options.userId, utcDay(now))).today, tokensPerDay, now);
      if (decision.allowed) return undefined;
      refusal = { code: "quota_exceeded", error: decision.error };
    } catch (error) {
      refusal = { code: "server_unavailable", error: `the token quota cannot be checked: ${redactor.redact((error as Error).message)}` };
    }
    metrics.refused(refusal.code);
    return refusal;
  }

  /**
   * One request to the model ended: in the metrics, and its usage in the store under the turn it
   * belongs to ("" for a sampling request outside any turn). Written as each call ends, so a quota
   * counts what was spent even if the turn then fails; a failed write is logged, not thrown.
   */
  async record(call: ModelCall, where: { sessionId: string; turnId: string }, logFields: Record<string, unknown>): Promise<void> {
    const { metrics, store, log, redactor, userId } = this.#options;
    metrics.modelCall(call.ok ? "ok" : "error", call.durationMs / 1000);
    if (call.usage.model_calls === 0) return;
    metrics.tokens(call.usage);
    const at = Date.now();
    await store
      .recordUsage({ userId, sessionId: where.sessionId, turnId: where.turnId, at, day: utcDay(at), usage: call.usage })
      .catch((error: unknown) => log.warn("usage_not_saved", { ...logFields, error: redactor.redact((error as Error).message) }));
  }
}
