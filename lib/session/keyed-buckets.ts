// One token bucket per key (an address, a prefix, a user id), bounded in how many keys it
// remembers: what admission and failed token checks both count. Pure in `now`.
import { fullBucket, takeToken, type Bucket, type RateLimit } from "./rate-limit.ts";

/** Keys remembered at most; past it, those whose bucket has refilled are forgotten, then the oldest half. */
const MAX_KEYS = 10_000;

export class KeyedBuckets {
  readonly #limit: RateLimit;
  readonly #buckets = new Map<string, Bucket>();

  constructor(limit: RateLimit) {
    this.#limit = limit;
  }

  /** Ms until `key` may take a token; 0 when it may now. Takes nothing. */
  waitMs(key: string, now: number): number {
    const bucket = this.#buckets.get(key);
    if (!bucket) return 0;
    const perMs = this.#limit.perMinute / 60_000;
    const tokens = Math.min(this.#limit.burst, bucket.tokens + Math.max(0, now - bucket.updatedAt) * perMs);
    return tokens >= 1 ? 0 : Math.ceil((1 - tokens) / perMs);
  }

  /** Takes a token of `key`: 0 when it took one, else the ms to wait. */
  take(key: string, now: number): number {
    if (this.#buckets.size >= MAX_KEYS) this.#prune(now);
    const decision = takeToken(this.#buckets.get(key) ?? fullBucket(this.#limit, now), this.#limit, now);
    this.#buckets.set(key, decision.bucket);
    return decision.allowed ? 0 : decision.retryAfterMs;
  }

  /** Gives back a token taken by `take` (the other bucket refused, or the check succeeded). */
  giveBack(key: string): void {
    const bucket = this.#buckets.get(key);
    if (bucket) bucket.tokens = Math.min(this.#limit.burst, bucket.tokens + 1);
  }

  #prune(now: number): void {
    const refillMs = (this.#limit.burst / this.#limit.perMinute) * 60_000;
    for (const [key, bucket] of this.#buckets) if (now - bucket.updatedAt >= refillMs) this.#buckets.delete(key);
    // Every key active within the refill time: forget the oldest half rather than grow.
    let drop = this.#buckets.size >= MAX_KEYS ? this.#buckets.size / 2 : 0;
    for (const key of this.#buckets.keys()) {
      if (drop-- <= 0) break;
      this.#buckets.delete(key);
    }
  }
}
