// Who may make a new session: token buckets per remote address and per address prefix, so one
// client inventing user ids cannot fill the server (returning users, with a stored conversation,
// are not counted here); and who sleeps when the server is full, so nobody is locked out.
import { addressPrefix } from "../http/client-address.ts";
import { KeyedBuckets } from "./keyed-buckets.ts";
import type { RateLimit } from "./rate-limit.ts";

/** A connection refused for a quota: told over the socket (close 1013) with this reason. */
export class AdmissionRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AdmissionRefused";
  }
}

/**
 * New sessions per remote address and per address prefix (/24, /64): one client inventing user
 * ids, or one network with many addresses, cannot fill the server. A close reason holds at most
 * 123 bytes, so the refusals are short; each names the key whose bucket ran out.
 */
export class NewSessionLimiter {
  readonly #perAddress: KeyedBuckets;
  readonly #perPrefix: KeyedBuckets;

  constructor(perAddress: RateLimit, perPrefix: RateLimit = { perMinute: Infinity, burst: Number.MAX_SAFE_INTEGER }) {
    this.#perAddress = new KeyedBuckets(perAddress);
    this.#perPrefix = new KeyedBuckets(perPrefix);
  }

  /** Undefined when `address` may open one more new session now; else why not (naming the key). */
  take(address: string, now: number): string | undefined {
    const waitMs = this.#perAddress.take(address, now);
    if (waitMs > 0) return `too many new sessions from your address (limits.new_session_burst); retry in ${Math.ceil(waitMs / 1000)} s`;
    const prefix = addressPrefix(address);
    const prefixWaitMs = this.#perPrefix.take(prefix, now);
    if (prefixWaitMs > 0) {
      this.#perAddress.giveBack(address);
      return `too many new sessions from ${prefix} (limits.new_session_prefix_burst); retry in ${Math.ceil(prefixWaitMs / 1000)} s`;
    }
    return undefined;
  }
}

/** A live session as the choice of who sleeps sees it. */
export interface SleepCandidate {
  userId: string;
  openSockets: number;
  busy: boolean;
  holdsResources: boolean;
  lastActivity: number;
}

/**
 * When limits.max_sessions is reached: the session to put to sleep (memory and MCP children
 * freed, history kept in the store, back on reconnect) so a newcomer gets in: the least recently
 * active one that holds resources, has no socket and runs no turn. Undefined: everyone is here.
 */
export function sleepCandidate(sessions: Iterable<SleepCandidate>): string | undefined {
  let chosen: SleepCandidate | undefined;
  for (const session of sessions) {
    if (!session.holdsResources || session.openSockets > 0 || session.busy) continue;
    if (!chosen || session.lastActivity < chosen.lastActivity) chosen = session;
  }
  return chosen?.userId;
}
