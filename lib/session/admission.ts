// Who may make a new session: a token bucket per remote address, so one client inventing user
// ids cannot fill the server. Returning users (a stored conversation) are not counted here.
import { fullBucket, takeToken, type Bucket, type RateLimit } from "./rate-limit.ts";

/** A connection refused for a quota: told over the socket (close 1013) with this reason. */
export class AdmissionRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AdmissionRefused";
  }
}

/** Addresses remembered at most; past it, those whose bucket has refilled are forgotten. */
const MAX_ADDRESSES = 10_000;

export class NewSessionLimiter {
  readonly #limit: RateLimit;
  readonly #buckets = new Map<string, Bucket>();

  constructor(limit: RateLimit) {
    this.#limit = limit;
  }

  /** Undefined when `address` may open one more new session now; else why not (naming the key). */
  take(address: string, now: number): string | undefined {
    if (this.#buckets.size >= MAX_ADDRESSES) this.#prune(now);
    const decision = takeToken(this.#buckets.get(address) ?? fullBucket(this.#limit, now), this.#limit, now);
    this.#buckets.set(address, decision.bucket);
    if (decision.allowed) return undefined;
    const seconds = Math.ceil(decision.retryAfterMs / 1000);
    // Short: with its code it is a close reason, which holds at most 123 bytes.
    return `too many new sessions from your address (limits.new_sessions_per_minute: ${this.#limit.perMinute}). Retry in ${seconds} s`;
  }

  #prune(now: number): void {
    const refillMs = (this.#limit.burst / this.#limit.perMinute) * 60_000;
    for (const [address, bucket] of this.#buckets) if (now - bucket.updatedAt >= refillMs) this.#buckets.delete(address);
    // Every address active within the refill time: forget the oldest half rather than grow.
    if (this.#buckets.size >= MAX_ADDRESSES) {
      let drop = this.#buckets.size / 2;
      for (const address of this.#buckets.keys()) {
        if (drop-- <= 0) break;
        this.#buckets.delete(address);
      }
    }
  }
}
