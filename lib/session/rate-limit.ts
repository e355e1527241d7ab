// Per-user message rate limit: a token bucket, as pure functions of `now`.

export interface Bucket {
  tokens: number;
  updatedAt: number;
}

export interface RateLimit {
  /** Messages allowed per minute on average. */
  perMinute: number;
  /** Messages that may arrive at once after a quiet spell. */
  burst: number;
}

export type RateDecision = { allowed: true; bucket: Bucket } | { allowed: false; bucket: Bucket; retryAfterMs: number };

export function fullBucket(limit: RateLimit, now: number): Bucket {
  return { tokens: limit.burst, updatedAt: now };
}

export function takeToken(bucket: Bucket, limit: RateLimit, now: number): RateDecision {
  const perMs = limit.perMinute / 60_000;
  const tokens = Math.min(limit.burst, bucket.tokens + Math.max(0, now - bucket.updatedAt) * perMs);
  if (tokens >= 1) return { allowed: true, bucket: { tokens: tokens - 1, updatedAt: now } };
  return { allowed: false, bucket: { tokens, updatedAt: now }, retryAfterMs: Math.ceil((1 - tokens) / perMs) };
}
