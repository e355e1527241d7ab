// `session.store: redis`: sessions and history in Redis, shared by every instance of a cluster.
// Writes of a turn are fenced: each carries the fence token of the user's lease (see lib/cluster/redis-coordinator.ts),
// and Redis refuses a write whose token is not the current one, so an instance that lost its
// lease (paused, partitioned, presumed dead) can never overwrite the turn of the new holder.
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { storedEntry, type HistoryEntry } from "./history.ts";
import { isRecord } from "../protocol.ts";
import type { TurnStatus } from "../protocol.ts";
import { keys } from "./redis-keys.ts";
import {
  StoreError,
  type Fence,
  type SessionRecord,
  type SessionStore,
  type StoredSession,
  type UsageRecord,
  type UsageSummary,
} from "./store.ts";

/** Model calls kept per user in the call log (the totals hash counts them all). */
const USAGE_CALLS_KEPT = 1000;
/** A day's quota counter lives two days: long enough for any time zone's "today" to be over. */
const USAGE_DAY_TTL_SECONDS = 2 * 24 * 60 * 60;

// Runs `redis.call` on the remaining keys only when KEYS[1] (the fence) still holds ARGV[1].
// One round trip for a turn's writes: the entries, their statuses and (at a turn's end) the session
// record, all or nothing behind the fence. ARGV: token, n, n entries, m, m (turnId, status) pairs,
// then the session fields (userId, session_id, created_at, last_activity, message_count) or none.
const FENCED_WRITE = `
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED') end
local n = tonumber(ARGV[2])
for i = 3, 2 + n do redis.call('RPUSH', KEYS[2], ARGV[i]) end
local at = 3 + n
local m = tonumber(ARGV[at])
for i = 1, m do redis.call('HSET', KEYS[3], ARGV[at + 2 * i - 1], ARGV[at + 2 * i]) end
at = at + 2 * m + 1
if ARGV[at] then
  redis.call('HSET', KEYS[4], 'session_id', ARGV[at + 1], 'created_at', ARGV[at + 2], 'last_activity', ARGV[at + 3], 'message_count', ARGV[at + 4])
  redis.call('ZADD', KEYS[5], ARGV[at + 3], ARGV[at])
end
return n`;
// A turn left `running` with nobody holding the user's lease belonged to an instance that died:
// marked `interrupted` in one step, so a turn that just ended (and released) is not overwritten.
const MARK_INTERRUPTED = `
local status = redis.call('HGET', KEYS[1], ARGV[1])
if status == 'running' and redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[1], ARGV[1], 'interrupted')
  return 'interrupted'
end
return status`;

// Read and delete in one step: a second take of the same field gets nothing.
const TAKE_FIELD = `
local value = redis.call('HGET', KEYS[1], ARGV[1])
if value then redis.call('HDEL', KEYS[1], ARGV[1]) end
return value`;
// Only the holder's token unlocks: a lock that expired and was taken by another stays theirs.
const UNLOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** A list element: `{turnId, message, tool?, status?}` as JSON; `status` (user messages only) is
 * the value when written, the live one is in the status hash. */
function isStoredEntry(value: unknown): value is Record<string, unknown> & { turnId: string } {
  return isRecord(value) && typeof value.turnId === "string";
}

export class RedisStore implements SessionStore {
  readonly #redis: Redis;

  /** Borrows a connection owned by the cluster coordinator. */
  constructor(redis: Redis) {
    this.#redis = redis;
  }

  async load(userId: string, maxEntries: number): Promise<StoredSession | undefined> {
    return this.#run(async () => {
      const hash = await this.#redis.hgetall(keys.session(userId));
      if (!hash.session_id) return undefined;
      const sessionId = hash.session_id;
      const [rawEntries, statuses] = await Promise.all([
        maxEntries > 0 ? this.#redis.lrange(keys.entries(sessionId), -maxEntries, -1) : Promise.resolve([]),
        this.#redis.hgetall(keys.statuses(sessionId)),
      ]);
      const entries: HistoryEntry[] = [];
      for (const raw of rawEntries) {
        const parsed: unknown = JSON.parse(raw);
        if (!isStoredEntry(parsed)) continue;
        const isUser = isRecord(parsed.message) && parsed.message.role === "user";
        let status: unknown = isUser ? (statuses[parsed.turnId] ?? parsed.status) : undefined;
        // `running` with nobody holding the user's lease: the instance running it died.
        if (status === "running")
          status = await this.#redis.eval(MARK_INTERRUPTED, 2, keys.statuses(sessionId), keys.lease(userId), parsed.turnId);
        const entry = storedEntry(parsed.turnId, parsed.message, status, parsed.tool);
        if (entry) entries.push(entry);
      }
      return {
        record: {
          userId,
          sessionId,
          createdAt: Number(hash.created_at),
          lastActivity: Number(hash.last_activity),
          messageCount: Number(hash.message_count),
        },
        entries,
      };
    });
  }

  saveSession(record: SessionRecord): Promise<void> {
    return this.#run(async () => {
      await this.#redis
        .multi()
        .hset(keys.session(record.userId), {
          session_id: record.sessionId,
          created_at: record.createdAt,
          last_activity: record.lastActivity,
          message_count: record.messageCount,
        })
        .zadd(keys.index(), record.lastActivity, record.userId)
        .exec();
    });
  }

  append(sessionId: string, entries: readonly HistoryEntry[], fence?: Fence): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    return this.#run(() => this.#fencedWrite(sessionId, entries, [], undefined, fence));
  }

  /** The entries, (turnId, status) pairs and maybe the session record in one fenced script call. */
  async #fencedWrite(
    sessionId: string,
    entries: readonly HistoryEntry[],
    statuses: readonly [string, string][],
    record: SessionRecord | undefined,
    fence: Fence | undefined,
  ): Promise<void> {
    const encoded = entries.map((entry) =>
      JSON.stringify({
        turnId: entry.turnId,
        message: entry.message,
        ...(entry.tool ? { tool: entry.tool } : {}),
        ...(entry.status ? { status: entry.status } : {}),
      }),
    );
    const pairs: [string, string][] = [
      ...entries
        .filter((entry) => entry.message.role === "user" && entry.status)
        .map((entry): [string, string] => [entry.turnId, entry.status ?? "ok"]),
      ...statuses,
    ];
    const session = record
      ? [record.userId, record.sessionId, String(record.createdAt), String(record.lastActivity), String(record.messageCount)]
      : [];
    await this.#redis.eval(
      FENCED_WRITE,
      5,
      fence ? keys.fence(fence.userId) : keys.fence(""),
      keys.entries(sessionId),
      keys.statuses(sessionId),
      keys.session(record?.userId ?? ""),
      keys.index(),
      fence ? String(fence.token) : "",
      String(encoded.length),
      ...encoded,
      String(pairs.length),
      ...pairs.flat(),
      ...session,
    );
  }

  setTurnStatus(sessionId: string, turnId: string, status: TurnStatus, fence?: Fence): Promise<void> {
    return this.#run(() => this.#fencedWrite(sessionId, [], [[turnId, status]], undefined, fence));
  }

  /** One round trip (it was three: append, status, session record). */
  endTurn(
    sessionId: string,
    entries: readonly HistoryEntry[],
    turnId: string,
    status: TurnStatus,
    record: SessionRecord,
    fence?: Fence,
  ): Promise<void> {
    return this.#run(() => this.#fencedWrite(sessionId, entries, [[turnId, status]], record, fence));
  }

  remove(userId: string): Promise<void> {
    return this.#run(async () => {
      const sessionId = await this.#redis.hget(keys.session(userId), "session_id");
      const multi = this.#redis.multi().del(keys.session(userId)).zrem(keys.index(), userId);
      if (sessionId) multi.del(keys.entries(sessionId), keys.statuses(sessionId));
      await multi.exec();
    });
  }

  purge(cutoff: number, live: ReadonlySet<string>): Promise<string[]> {
    return this.#run(async () => {
      const old = await this.#redis.zrangebyscore(keys.index(), "-inf", `(${cutoff}`);
      const doomed = old.filter((userId) => !live.has(userId));
      for (const userId of doomed) {
        // Another instance may hold it live: its lease or a fresh activity keeps it.
        const last = Number(await this.#redis.hget(keys.session(userId), "last_activity"));
        if (last >= cutoff || (await this.#redis.exists(keys.lease(userId)))) continue;
        await this.remove(userId);
        // A purged user is gone: their OAuth tokens and the servers they added go too (a New chat keeps them).
        const kinds = await this.#redis.smembers(keys.userDataKinds(userId));
        await this.#redis.del(...kinds.map((kind) => keys.userData(userId, kind)), keys.userDataKinds(userId));
      }
      return doomed;
    });
  }

  recordUsage({ userId, sessionId, turnId, at, day, usage }: UsageRecord): Promise<void> {
    return this.#run(async () => {
      // One MULTI: every instance adds with INCRBY, so the shared counts never lose an update.
      await this.#redis
        .multi()
        .hincrby(keys.usage(userId), "prompt_tokens", usage.prompt_tokens)
        .hincrby(keys.usage(userId), "completion_tokens", usage.completion_tokens)
        .hincrby(keys.usage(userId), "cached_tokens", usage.cached_tokens)
        .hincrby(keys.usage(userId), "total_tokens", usage.total_tokens)
        .hincrby(keys.usage(userId), "model_calls", usage.model_calls)
        .hincrby(keys.usage(userId), "estimated", usage.estimated ? 1 : 0)
        .incrby(keys.usageDay(userId, day), usage.total_tokens)
        .expire(keys.usageDay(userId, day), USAGE_DAY_TTL_SECONDS)
        .rpush(keys.usageCalls(userId), JSON.stringify({ session_id: sessionId, turn_id: turnId, at, ...usage }))
        .ltrim(keys.usageCalls(userId), -USAGE_CALLS_KEPT, -1)
        .exec();
    });
  }

  usage(userId: string, day: string): Promise<UsageSummary> {
    return this.#run(async () => {
      const [hash, today] = await Promise.all([this.#redis.hgetall(keys.usage(userId)), this.#redis.get(keys.usageDay(userId, day))]);
      const field = (name: string) => Number(hash[name] ?? 0) || 0;
      return {
        total: {
          prompt_tokens: field("prompt_tokens"),
          completion_tokens: field("completion_tokens"),
          cached_tokens: field("cached_tokens"),
          total_tokens: field("total_tokens"),
          model_calls: field("model_calls"),
          ...(field("estimated") > 0 ? { estimated: true } : {}),
        },
        today: Number(today ?? 0) || 0,
      };
    });
  }

  countSessions(): Promise<number> {
    return this.#run(() => this.#redis.zcard(keys.index()));
  }

  getUserData(userId: string, kind: string, name: string): Promise<string | undefined> {
    return this.#run(async () => (await this.#redis.hget(keys.userData(userId, kind), name)) ?? undefined);
  }

  listUserData(userId: string, kind: string): Promise<{ name: string; value: string }[]> {
    return this.#run(async () => {
      const hash = await this.#redis.hgetall(keys.userData(userId, kind));
      return Object.entries(hash)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([name, value]) => ({ name, value }));
    });
  }

  setUserData(userId: string, kind: string, name: string, value: string): Promise<void> {
    return this.#run(async () => {
      // The kinds a user has are listed, so a purge finds every record of theirs without a SCAN.
      await this.#redis.multi().hset(keys.userData(userId, kind), name, value).sadd(keys.userDataKinds(userId), kind).exec();
    });
  }

  deleteUserData(userId: string, kind: string, name?: string): Promise<void> {
    return this.#run(async () => {
      if (name === undefined) await this.#redis.del(keys.userData(userId, kind));
      else await this.#redis.hdel(keys.userData(userId, kind), name);
    });
  }

  takeUserData(userId: string, kind: string, name: string): Promise<string | undefined> {
    return this.#run(async () => {
      const value = await this.#redis.eval(TAKE_FIELD, 1, keys.userData(userId, kind), name);
      return typeof value === "string" ? value : undefined;
    });
  }

  lock(name: string, ttlMs: number): Promise<string | undefined> {
    return this.#run(async () => {
      const token = randomUUID();
      const set = await this.#redis.set(keys.lock(name), token, "PX", ttlMs, "NX");
      return set === "OK" ? token : undefined;
    });
  }

  unlock(name: string, token: string): Promise<void> {
    return this.#run(async () => {
      await this.#redis.eval(UNLOCK, 1, keys.lock(name), token);
    });
  }

  /** The connection belongs to the coordinator, which closes it. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  async #run<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      const message = (error as Error).message;
      if (/FENCED/.test(message))
        throw new StoreError("this instance lost the user's turn lease to another instance; the write was refused", { cause: error });
      throw new StoreError(`session storage (Redis) is unreachable or failed: ${message}`, { cause: error });
    }
  }
}
