// Failed token checks per remote address and per user id (server.auth.failed_checks_per_minute,
// failed_check_burst): past either, checks are answered 429 without running scrypt, so a flood of
// wrong tokens costs the server little and tells the guesser nothing. Token buckets, pure in `now`.
import { fullBucket, takeToken, type Bucket, type RateLimit } from "../session/rate-limit.ts";

/** Keys remembered at most per kind; past it, refilled ones are forgotten, then the oldest half. */
const MAX_KEYS = 10_000;

class Buckets {
  readonly #limit: RateLimit;
  readonly #buckets = new Map<string, Bucket>();

  constructor(limit: RateLimit) {
    this.#limit = limit;
  }

  /** Ms until `key` may fail once more; 0 when it may now. */
  waitMs(key: string, now: number): number {
    const bucket = this.#buckets.get(key);
    if (!bucket) return 0;
    const perMs = this.#limit.perMinute / 60_000;
    const tokens = Math.min(this.#limit.burst, bucket.tokens + Math.max(0, now - bucket.updatedAt) * perMs);
    return tokens >= 1 ? 0 : Math.ceil((1 - tokens) / perMs);
  }

  take(key: string, now: number): void {
    if (this.#buckets.size >= MAX_KEYS) this.#prune(now);
    this.#buckets.set(key, takeToken(this.#buckets.get(key) ?? fullBucket(this.#limit, now), this.#limit, now).bucket);
  }

  giveBack(key: string): void {
    const bucket = this.#buckets.get(key);
    if (bucket) bucket.tokens = Math.min(this.#limit.burst, bucket.tokens + 1);
  }

  #prune(now: number): void {
    const refillMs = (this.#limit.burst / this.#limit.perMinute) * 60_000;
    for (const [key, bucket] of this.#buckets) if (now - bucket.updatedAt >= refillMs) this.#buckets.delete(key);
    let drop = this.#buckets.size >= MAX_KEYS ? this.#buckets.size / 2 : 0;
    for (const key of this.#buckets.keys()) {
      if (drop-- <= 0) break;
      this.#buckets.delete(key);
    }
  }
}

export class FailedChecks {
  readonly #byAddress: Buckets;
  readonly #byUser: Buckets;

  constructor(limit: RateLimit) {
    this.#byAddress = new Buckets(limit);
    this.#byUser = new Buckets(limit);
  }

  /**
   * A check from `address` for `userId` about to run takes a token of both buckets (checks still
   * running count as failures, so a burst sent at once is held to the limit too): 0 when it may
   * run, else the ms to wait. A check that succeeds gives its tokens back (`succeeded`).
   */
  begin(address: string, userId: string, now: number): number {
    const waitMs = Math.max(this.#byAddress.waitMs(address, now), this.#byUser.waitMs(userId, now));
    if (waitMs > 0) return waitMs;
    this.#byAddress.take(address, now);
    this.#byUser.take(userId, now);
    return 0;
  }

  succeeded(address: string, userId: string): void {
    this.#byAddress.giveBack(address);
    this.#byUser.giveBack(userId);
  }
}
