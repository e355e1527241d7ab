// Token usage of model calls, summed per turn, per user and per day (the shape, TokenUsage, is the
// wire's: lib/protocol.ts), and the daily quota decision.
import type { TokenUsage } from "../protocol.ts";

export function emptyUsage(): TokenUsage {
  return { prompt_tokens: 0, completion_tokens: 0, cached_tokens: 0, total_tokens: 0, model_calls: 0 };
}

/** Adds `more` into `into` (mutates it) and returns it. */
export function addUsage(into: TokenUsage, more: TokenUsage): TokenUsage {
  into.prompt_tokens += more.prompt_tokens;
  into.completion_tokens += more.completion_tokens;
  into.cached_tokens += more.cached_tokens;
  into.total_tokens += more.total_tokens;
  into.model_calls += more.model_calls;
  if (more.estimated) into.estimated = true;
  return into;
}

/** The UTC day of an instant, as quotas count it: "2026-11-29". */
export function utcDay(now: number): string {
  return new Date(now).toISOString().slice(0, 10);
}

/** The next UTC midnight after `now` (epoch ms): when a daily quota starts over. */
export function nextUtcMidnight(now: number): number {
  const date = new Date(now);
  return Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate() + 1);
}

/** Pure: whether a user who used `used` tokens today may start a turn, and if not, the message saying when it resets. */
export function quotaDecision(
  used: number,
  perDay: number | undefined,
  now: number,
): { allowed: true } | { allowed: false; error: string } {
  if (perDay === undefined || used < perDay) return { allowed: true };
  const resets = nextUtcMidnight(now);
  const minutes = Math.ceil((resets - now) / 60_000);
  const wait = minutes >= 60 ? `${Math.floor(minutes / 60)} h ${minutes % 60} min` : `${minutes} min`;
  return {
    allowed: false,
    error:
      `Daily token quota reached: ${used} of ${perDay} tokens used today (limits.tokens_per_day). ` +
      `It resets at midnight UTC (${new Date(resets).toISOString().replace(".000Z", "Z")}), in ${wait}`,
  };
}
