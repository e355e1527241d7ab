// Several server instances behind a load balancer, coordinated through Redis:
// - a per-user turn lease (SET NX PX + a fence token from INCR) so only one instance runs a
//   user's turns at a time, whichever instance the user's sockets reach;
// - a per-user pub/sub channel carrying a turn's frames to the user's sockets on other instances,
//   and cancels/approval answers back to the instance running the turn;
// - presence: which users have a live session somewhere, for a cluster-wide /sessions.
import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import type { ConnectionOptions } from "node:tls";
import { Redis } from "ioredis";
import type { Logger } from "../log.ts";
import type { Coordinator, CoordinatorMessage, TurnLease } from "../session/coordinator.ts";
import { KEY_PREFIX, keys } from "../store/redis-keys.ts";

/**
 * What travels on a user's channel between instances: a coordinator message signed by its sender,
 * with a nonce that each receiver accepts once within the message's window.
 */
type ClusterMessage = CoordinatorMessage & { from: string; at: number; nonce: string };

export interface ClusterOptions {
  url: string;
  log: Logger;
  /** Lease time-to-live; renewed at a third of it while the turn runs. */
  leaseMs: number;
  /** redis.cluster_secret: signs and checks every message between instances. */
  secret: string;
  /** TLS options (CA, client certificate) for a rediss:// URL. */
  tls?: ConnectionOptions | undefined;
}

/** A signed message older (or newer) than this is dropped: a recorded one cannot be replayed later. */
const MAX_MESSAGE_AGE_MS = 60_000;
/** Nonces remembered at most; past it the oldest are forgotten (and their messages are near the window's end). */
const MAX_SEEN_NONCES = 200_000;

/**
 * The wire form of a message on `channelName`: "<hex HMAC-SHA256>.<JSON>", the MAC over the
 * channel and the JSON, so a message signed for one user cannot be replayed to another.
 */
export function signMessage(secret: string, channelName: string, body: string): string {
  return `${createHmac("sha256", secret).update(`${channelName}\n${body}`).digest("hex")}.${body}`;
}

/** The JSON of a correctly signed wire message, or undefined. */
export function verifyMessage(secret: string, channelName: string, wire: string): string | undefined {
  const dot = wire.indexOf(".");
  if (dot !== 64) return undefined;
  const body = wire.slice(dot + 1);
  const expected = createHmac("sha256", secret).update(`${channelName}\n${body}`).digest();
  const given = Buffer.from(wire.slice(0, dot), "hex");
  return given.length === expected.length && timingSafeEqual(given, expected) ? body : undefined;
}

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;
// The lease and its fence token in one round trip: the token only when the lease was free.
const ACQUIRE = `if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return redis.call('INCR', KEYS[2]) else return false end`;
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
const PRESENCE_KEY = keys.presence();
const PRESENCE_TTL_MS = 15_000;
/** How long deltas are skipped after a publish that no other instance received. */
const QUIET_MS = 1000;

const channel = keys.channel;

function isClusterMessage(value: unknown): value is ClusterMessage {
  return (
    typeof value === "object" &&
    value !== null &&
    "kind" in value &&
    "from" in value &&
    typeof value.from === "string" &&
    "at" in value &&
    typeof value.at === "number" &&
    "nonce" in value &&
    typeof value.nonce === "string" &&
    value.nonce.length >= 8 &&
    value.nonce.length <= 64
  );
}

export class ClusterCoordinator implements Coordinator {
  readonly spansInstances = true;
  readonly instanceId = randomUUID().slice(0, 8);
  /** Commands: fail fast while Redis is away, so a turn gets a clear error instead of hanging. */
  readonly redis: Redis;
  readonly #subscriber: Redis;
  readonly #log: Logger;
  readonly #leaseMs: number;
  readonly #secret: string;
  /** Messages dropped for a missing or wrong signature: logged at the first and every 100th. */
  #rejected = 0;
  /** Signed messages seen again (a capture replayed): logged at the first and every 100th. */
  #replayed = 0;
  /** Nonces of the messages accepted within the window, with when each was sent (insertion order ≈ time). */
  readonly #seen = new Map<string, number>();
  readonly #handlers = new Map<string, (message: CoordinatorMessage) => void>();
  readonly #present = new Set<string>();
  /** Users no other instance listened to at the last publish, until when (epoch ms). */
  readonly #quietUntil = new Map<string, number>();
  #presenceTimer: NodeJS.Timeout | undefined;

  constructor(options: ClusterOptions) {
    this.#log = options.log;
    this.#leaseMs = options.leaseMs;
    this.#secret = options.secret;
    const common = {
      ...(options.tls ? { tls: options.tls } : {}),
      lazyConnect: false,
      maxRetriesPerRequest: 1,
      // Reconnect forever, at most every 2 s: the instance recovers by itself when Redis is back.
      retryStrategy: (attempt: number) => Math.min(200 * attempt, 2000),
    };
    this.redis = new Redis(options.url, { ...common, enableOfflineQueue: false });
    this.#subscriber = new Redis(options.url, { ...common, enableOfflineQueue: true });
    for (const [name, connection] of [
      ["commands", this.redis],
      ["subscriber", this.#subscriber],
    ] as const) {
      connection.on("error", (error: Error) => this.#log.debug("redis_error", { connection: name, error: error.message }));
      connection.on("ready", () => this.#log.info("redis_ready", { connection: name, instance: this.instanceId }));
      connection.on("end", () => this.#log.warn("redis_disconnected", { connection: name }));
    }
    this.#subscriber.on("message", (from: string, text: string) => {
      const userId = from.slice(`${KEY_PREFIX}user:`.length);
      // Whoever can write to Redis could otherwise approve a tool call or cancel a turn.
      const body = verifyMessage(this.#secret, from, text);
      let message: unknown;
      try {
        message = body === undefined ? undefined : JSON.parse(body);
      } catch {
        message = undefined;
      }
      if (!isClusterMessage(message) || Math.abs(Date.now() - message.at) > MAX_MESSAGE_AGE_MS) {
        if (this.#rejected++ % 100 === 0)
          this.#log.warn("cluster_message_rejected", {
            user_id: userId,
            rejected: this.#rejected,
            reason: body === undefined ? "missing or wrong signature (redis.cluster_secret)" : "malformed or stale",
          });
        return;
      }
      if (message.from === this.instanceId) return;
      if (!this.#firstSeen(message.nonce, message.at)) {
        if (this.#replayed++ % 100 === 0)
          this.#log.warn("cluster_message_replayed", { user_id: userId, replayed: this.#replayed, kind: message.kind });
        return;
      }
      this.#handlers.get(userId)?.(message);
    });
    this.#presenceTimer = setInterval(() => void this.#refreshPresence(), PRESENCE_TTL_MS / 3);
    this.#presenceTimer.unref();
  }

  /** Whether `nonce` is new in the window; remembers it. Nonces past the window are forgotten. */
  #firstSeen(nonce: string, at: number): boolean {
    const now = Date.now();
    for (const [old, sentAt] of this.#seen) {
      if (now - sentAt <= 2 * MAX_MESSAGE_AGE_MS && this.#seen.size < MAX_SEEN_NONCES) break;
      this.#seen.delete(old);
    }
    if (this.#seen.has(nonce)) return false;
    this.#seen.set(nonce, at);
    return true;
  }

  /** Resolves when the command connection is ready (or rejects after `timeoutMs`). */
  async connected(timeoutMs = 5000): Promise<void> {
    if (this.redis.status === "ready") return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`Redis at ${redisLabel(this.redis)} did not answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.redis.once("ready", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async healthy(): Promise<boolean> {
    try {
      return (await this.redis.ping()) === "PONG";
    } catch {
      return false;
    }
  }

  /**
   * Waits until this instance holds the user's turn lease. Another instance running a turn of the
   * same user makes us wait (never run two at once); a dead one's lease expires within leaseMs.
   */
  async acquire(userId: string, signal: AbortSignal): Promise<TurnLease> {
    const owner = `${this.instanceId}:${randomUUID()}`;
    let token: number;
    for (let attempt = 0; ; attempt++) {
      signal.throwIfAborted();
      let taken: unknown;
      try {
        taken = await this.redis.eval(ACQUIRE, 2, keys.lease(userId), keys.fence(userId), owner, this.#leaseMs);
      } catch (error) {
        throw new Error(`session storage (Redis) is unreachable, try again in a moment (${(error as Error).message})`, { cause: error });
      }
      if (typeof taken === "number") {
        token = taken;
        break;
      }
      await new Promise<void>((resolve) => {
        const onAbort = () => {
          clearTimeout(timer);
          resolve();
        };
        // The listener goes with its timer: a long wait must not pile one up per attempt.
        const timer = setTimeout(
          () => {
            signal.removeEventListener("abort", onAbort);
            resolve();
          },
          Math.min(50 * 2 ** Math.min(attempt, 4), 500),
        );
        signal.addEventListener("abort", onAbort, { once: true });
      });
    }
    const lost = new AbortController();
    const renew = setInterval(() => {
      this.redis.eval(RENEW, 1, keys.lease(userId), owner, this.#leaseMs).then(
        (renewed) => {
          if (renewed !== 1) lost.abort(new Error("the turn lease was taken over by another instance"));
        },
        (error: Error) => lost.abort(new Error(`the turn lease could not be renewed: ${error.message}`)),
      );
    }, this.#leaseMs / 3);
    renew.unref();
    this.#log.debug("lease_acquired", { user_id: userId, instance: this.instanceId, fence: token });
    return {
      // Redis refuses a write whose token is no longer the user's current one.
      fence: { userId, token },
      // Another instance may have run turns of this user since this one last read the history.
      historyStale: true,
      lost: lost.signal,
      release: async () => {
        clearInterval(renew);
        await this.redis.eval(RELEASE, 1, keys.lease(userId), owner).catch(() => undefined);
      },
    };
  }

  /** Receives the user's messages from other instances while the session is live here. */
  async join(userId: string, onMessage: (message: CoordinatorMessage) => void): Promise<void> {
    this.#handlers.set(userId, onMessage);
    this.#present.add(userId);
    await this.#subscriber.subscribe(channel(userId));
    await this.redis.zadd(PRESENCE_KEY, Date.now() + PRESENCE_TTL_MS, userId).catch(() => undefined);
  }

  async leave(userId: string): Promise<void> {
    this.#handlers.delete(userId);
    this.#quietUntil.delete(userId);
    this.#present.delete(userId);
    await this.#subscriber.unsubscribe(channel(userId)).catch(() => undefined);
    await this.redis.zrem(PRESENCE_KEY, userId).catch(() => undefined);
  }

  /** Best effort: a frame that cannot be published only misses the user's other instances. */
  publish(userId: string, message: CoordinatorMessage): void {
    // Text deltas are most of the traffic: while no other instance listens to this user (PUBLISH
    // counted only our own subscription), they are skipped for a second. Every other frame always
    // goes out, so a tab that joins elsewhere still gets the tool cards, the answer and the history.
    const quiet = this.#quietUntil.get(userId);
    if (message.kind === "frame" && message.frame.type === "delta" && quiet !== undefined && quiet > Date.now()) return;
    const name = channel(userId);
    const wire = signMessage(
      this.#secret,
      name,
      JSON.stringify({ ...message, from: this.instanceId, at: Date.now(), nonce: randomUUID() }),
    );
    this.redis.publish(name, wire).then(
      (listeners) => {
        if (listeners <= 1) this.#quietUntil.set(userId, Date.now() + QUIET_MS);
        else this.#quietUntil.delete(userId);
      },
      () => undefined,
    );
  }

  /** Users with a live session on any instance. */
  async liveUsers(): Promise<string[]> {
    return this.redis.zrangebyscore(PRESENCE_KEY, Date.now(), "+inf");
  }

  async #refreshPresence(): Promise<void> {
    if (this.#present.size === 0) return;
    const expires = Date.now() + PRESENCE_TTL_MS;
    const args = [...this.#present].flatMap((userId) => [expires, userId]);
    await this.redis.zadd(PRESENCE_KEY, ...args).catch(() => undefined);
    await this.redis.zremrangebyscore(PRESENCE_KEY, "-inf", Date.now()).catch(() => undefined);
  }

  async close(): Promise<void> {
    clearInterval(this.#presenceTimer);
    if (this.#present.size > 0) await this.redis.zrem(PRESENCE_KEY, ...this.#present).catch(() => undefined);
    this.redis.disconnect();
    this.#subscriber.disconnect();
  }
}

function redisLabel(redis: Redis): string {
  return `${redis.options.host ?? "?"}:${redis.options.port ?? "?"}`;
}
