// Where sessions and their history are kept between restarts: one small interface, chosen by
// `session.store`. Methods are async so a networked store fits the same shape as the embedded one.
import type { HistoryEntry } from "./history.ts";
import type { TurnStatus } from "../protocol.ts";
import { addUsage, emptyUsage } from "../model/usage.ts";
import type { TokenUsage } from "../protocol.ts";
import { MemoryUserData, type UserDataStore } from "./user-data.ts";

export interface SessionRecord {
  userId: string;
  sessionId: string;
  /** Epoch milliseconds. */
  createdAt: number;
  lastActivity: number;
  messageCount: number;
}

export interface StoredSession {
  record: SessionRecord;
  /** The newest entries, at most the number asked for, oldest first. */
  entries: HistoryEntry[];
}

/** The fence token of a user's turn lease (cluster mode): writes with a stale token are refused. */
export interface Fence {
  userId: string;
  token: number;
}

/** One model call's usage, as the store records it. */
export interface UsageRecord {
  userId: string;
  sessionId: string;
  turnId: string;
  /** Epoch milliseconds. */
  at: number;
  /** The UTC day the quota counts it on ("2026-11-29"). */
  day: string;
  usage: TokenUsage;
}

/** A user's usage: every call the store still has, and the tokens of one day (for the quota). */
export interface UsageSummary {
  total: TokenUsage;
  today: number;
}

export interface SessionStore extends UserDataStore {
  /**
   * Adds one model call's usage to the user's records and to the day's count. Usage belongs to
   * the user, not to a conversation: a New chat does not reset it (the retention purge does).
   */
  recordUsage(record: UsageRecord): Promise<void>;
  /** The user's usage totals, and the tokens counted on `day`. */
  usage(userId: string, day: string): Promise<UsageSummary>;
  /** How many sessions the store holds (live or not). */
  countSessions(): Promise<number>;
  /** The user's stored session, or undefined. Turns left `running` by a dead server read as `interrupted`. */
  load(userId: string, maxEntries: number): Promise<StoredSession | undefined>;
  /** Creates or replaces the user's session record. */
  saveSession(record: SessionRecord): Promise<void>;
  /** Appends entries to the history of a session, in order. */
  append(sessionId: string, entries: readonly HistoryEntry[], fence?: Fence): Promise<void>;
  /** Sets how a turn ended, on its user message. */
  setTurnStatus(sessionId: string, turnId: string, status: TurnStatus, fence?: Fence): Promise<void>;
  /**
   * The end of a turn in one write: its remaining entries, how it ended, and the session record
   * (last activity, message count). Done before the answer frame is sent.
   */
  endTurn(
    sessionId: string,
    entries: readonly HistoryEntry[],
    turnId: string,
    status: TurnStatus,
    record: SessionRecord,
    fence?: Fence,
  ): Promise<void>;
  /** Deletes the user's session and history. */
  remove(userId: string): Promise<void>;
  /** Deletes sessions idle since before `cutoff` (epoch ms), except the live ones; returns their user ids. */
  purge(cutoff: number, live: ReadonlySet<string>): Promise<string[]>;
  close(): Promise<void>;
}

/** `session.store: memory`: nothing survives a restart, as in the original (usage is counted in memory). */
export class MemoryStore extends MemoryUserData implements SessionStore {
  readonly #usage = new Map<string, TokenUsage>();
  readonly #days = new Map<string, number>();
  recordUsage({ userId, day, usage }: UsageRecord): Promise<void> {
    const total = this.#usage.get(userId) ?? emptyUsage();
    this.#usage.set(userId, addUsage(total, usage));
    const key = `${userId}\n${day}`;
    this.#days.set(key, (this.#days.get(key) ?? 0) + usage.total_tokens);
    return Promise.resolve();
  }
  usage(userId: string, day: string): Promise<UsageSummary> {
    return Promise.resolve({ total: { ...(this.#usage.get(userId) ?? emptyUsage()) }, today: this.#days.get(`${userId}\n${day}`) ?? 0 });
  }
  countSessions(): Promise<number> {
    return Promise.resolve(0);
  }
  load(): Promise<StoredSession | undefined> {
    return Promise.resolve(undefined);
  }
  saveSession(): Promise<void> {
    return Promise.resolve();
  }
  append(): Promise<void> {
    return Promise.resolve();
  }
  setTurnStatus(): Promise<void> {
    return Promise.resolve();
  }
  endTurn(): Promise<void> {
    return Promise.resolve();
  }
  remove(): Promise<void> {
    return Promise.resolve();
  }
  purge(): Promise<string[]> {
    return Promise.resolve([]);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

export class StoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StoreError";
  }
}
