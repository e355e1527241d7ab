// Failed token checks per remote address and per user id (server.auth.failed_checks_per_minute,
// failed_check_burst): past either, checks are answered 429 without running scrypt, so a flood of
// wrong tokens costs the server little and tells the guesser nothing. Token buckets, pure in `now`.
import { KeyedBuckets } from "../session/keyed-buckets.ts";
import type { RateLimit } from "../session/rate-limit.ts";

export class FailedChecks {
  readonly #byAddress: KeyedBuckets;
  readonly #byUser: KeyedBuckets;

  constructor(limit: RateLimit) {
    this.#byAddress = new KeyedBuckets(limit);
    this.#byUser = new KeyedBuckets(limit);
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
