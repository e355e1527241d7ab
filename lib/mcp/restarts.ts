// When a crashed MCP server starts again, and when it is left failed: pure decisions over the
// restarts so far, the cap (limits.mcp_max_restarts) and the clock; the connection applies them.

/** Backoff before the n-th restart (n ≥ 1): 1 s, 2 s, 4 s ... */
export function backoffMs(restarts: number): number {
  return 1000 * 2 ** Math.max(0, restarts - 1);
}

/**
 * When a server that just crashed may start again (epoch ms): the first crash restarts at once,
 * later ones wait 1 s, 2 s, 4 s ... so a crash loop cannot spin.
 */
export function nextStartAfterCrash(restarts: number, now: number): number {
  return now + (restarts === 0 ? 0 : backoffMs(restarts));
}

/**
 * A start that failed. A restart after a crash that fails to start is one more crash: it may be
 * tried again (with backoff) until the cap, rather than giving up at once. A first start that
 * fails is left failed.
 */
export function afterFailedStart(
  restarts: number,
  maxRestarts: number,
  now: number,
): { state: "exited"; nextStartAt: number } | { state: "failed" } {
  if (restarts > 0 && restarts < maxRestarts) return { state: "exited", nextStartAt: now + backoffMs(restarts) };
  return { state: "failed" };
}

export type RestartDecision =
  /** The cap is reached: the server is left failed with this error. */
  | { kind: "give_up"; error: string }
  /** Restart now (and count it). */
  | { kind: "now" }
  /** The backoff ends within the wait allowed: wait `ms`, then restart. */
  | { kind: "wait"; ms: number }
  /** The backoff ends later than the wait allowed: not now; it is still `ms` away. */
  | { kind: "later"; ms: number };

/**
 * What to do with a crashed server that someone wants (a call, or a turn's `ready()`), who may
 * wait up to `waitMs` for the backoff to end.
 */
export function restartDecision(
  crash: { restarts: number; nextStartAt: number },
  maxRestarts: number,
  now: number,
  waitMs: number,
): RestartDecision {
  const { restarts } = crash;
  if (restarts >= maxRestarts) {
    return {
      kind: "give_up",
      error: `the server crashed and was restarted ${restarts} time${restarts === 1 ? "" : "s"} (limits.mcp_max_restarts); it is not started again`,
    };
  }
  const delay = crash.nextStartAt - now;
  if (delay > waitMs) return { kind: "later", ms: delay };
  if (delay > 0) return { kind: "wait", ms: delay };
  return { kind: "now" };
}
