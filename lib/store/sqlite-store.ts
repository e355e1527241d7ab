// `session.store: sqlite` (the default): one file, WAL mode, a versioned schema with migrations.
// better-sqlite3 is synchronous; calls are committed together at the end of each event-loop turn
// (group commit), and each call's promise settles once its write is durable in the WAL.
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { storedEntry, type HistoryEntry } from "./history.ts";
import type { TurnStatus } from "../protocol.ts";
import { MemoryUserData } from "./user-data.ts";
import { StoreError, type SessionRecord, type SessionStore, type StoredSession, type UsageRecord, type UsageSummary } from "./store.ts";

/** Each step moves the schema from version i to i+1; never edit one that has shipped. */
const MIGRATIONS: string[] = [
  `CREATE TABLE sessions (
     user_id       TEXT PRIMARY KEY,
     session_id    TEXT NOT NULL UNIQUE,
     created_at    INTEGER NOT NULL,
     last_activity INTEGER NOT NULL,
     message_count INTEGER NOT NULL
   );
   CREATE TABLE entries (
     session_id TEXT NOT NULL,
     seq        INTEGER NOT NULL,
     turn_id    TEXT NOT NULL,
     message    TEXT NOT NULL,
     status     TEXT,
     tool       TEXT,
     PRIMARY KEY (session_id, seq)
   ) WITHOUT ROWID;
   CREATE INDEX entries_turn ON entries (session_id, turn_id);
   CREATE INDEX sessions_idle ON sessions (last_activity);`,
  // Usage belongs to the user, not to a conversation: it outlives a New chat.
  `CREATE TABLE usage_calls (
     user_id           TEXT NOT NULL,
     session_id        TEXT NOT NULL,
     turn_id           TEXT NOT NULL,
     at                INTEGER NOT NULL,
     prompt_tokens     INTEGER NOT NULL,
     completion_tokens INTEGER NOT NULL,
     cached_tokens     INTEGER NOT NULL,
     total_tokens      INTEGER NOT NULL,
     estimated         INTEGER NOT NULL
   );
   CREATE INDEX usage_calls_user ON usage_calls (user_id, at);
   CREATE INDEX usage_calls_turn ON usage_calls (turn_id);
   CREATE TABLE usage_days (
     user_id TEXT NOT NULL,
     day     TEXT NOT NULL,
     tokens  INTEGER NOT NULL,
     PRIMARY KEY (user_id, day)
   ) WITHOUT ROWID;`,
  // A user's own records (OAuth tokens, servers the user added); secret values arrive encrypted.
  `CREATE TABLE user_data (
     user_id TEXT NOT NULL,
     kind    TEXT NOT NULL,
     name    TEXT NOT NULL,
     value   TEXT NOT NULL,
     PRIMARY KEY (user_id, kind, name)
   ) WITHOUT ROWID;`,
];
export const SCHEMA_VERSION = MIGRATIONS.length;

interface EntryRow {
  turn_id: string;
  message: string;
  status: string | null;
  tool: string | null;
}

interface SessionRow {
  user_id: string;
  session_id: string;
  created_at: number;
  last_activity: number;
  message_count: number;
}

function parseJson(text: string): unknown {
  return JSON.parse(text);
}

/** Every statement the store runs, prepared once: preparing per call cost more than the write. */
function prepareStatements(db: Database.Database) {
  return {
    maxSeq: db.prepare("SELECT MAX(seq) AS seq FROM entries WHERE session_id = ?"),
    session: db.prepare("SELECT * FROM sessions WHERE user_id = ?"),
    interruptRunning: db.prepare("UPDATE entries SET status = 'interrupted' WHERE session_id = ? AND status = 'running'"),
    newestEntries: db.prepare("SELECT turn_id, message, status, tool FROM entries WHERE session_id = ? ORDER BY seq DESC LIMIT ?"),
    saveSession: db.prepare(
      `INSERT INTO sessions (user_id, session_id, created_at, last_activity, message_count) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (user_id) DO UPDATE SET session_id = excluded.session_id, created_at = excluded.created_at,
         last_activity = excluded.last_activity, message_count = excluded.message_count`,
    ),
    insertEntry: db.prepare("INSERT INTO entries (session_id, seq, turn_id, message, status, tool) VALUES (?, ?, ?, ?, ?, ?)"),
    setStatus: db.prepare("UPDATE entries SET status = ? WHERE session_id = ? AND turn_id = ? AND status IS NOT NULL"),
    sessionIdOf: db.prepare("SELECT session_id FROM sessions WHERE user_id = ?"),
    deleteEntries: db.prepare("DELETE FROM entries WHERE session_id = ?"),
    deleteSession: db.prepare("DELETE FROM sessions WHERE user_id = ?"),
    idleSince: db.prepare("SELECT user_id, session_id FROM sessions WHERE last_activity < ?"),
    insertUsage: db.prepare(
      `INSERT INTO usage_calls (user_id, session_id, turn_id, at, prompt_tokens, completion_tokens, cached_tokens, total_tokens, estimated)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    addDay: db.prepare(
      "INSERT INTO usage_days (user_id, day, tokens) VALUES (?, ?, ?) ON CONFLICT (user_id, day) DO UPDATE SET tokens = tokens + excluded.tokens",
    ),
    usageTotal: db.prepare(
      `SELECT COALESCE(SUM(prompt_tokens), 0) AS prompt, COALESCE(SUM(completion_tokens), 0) AS completion,
         COALESCE(SUM(cached_tokens), 0) AS cached, COALESCE(SUM(total_tokens), 0) AS total, COUNT(*) AS calls,
         COALESCE(MAX(estimated), 0) AS estimated
       FROM usage_calls WHERE user_id = ?`,
    ),
    usageDay: db.prepare("SELECT tokens FROM usage_days WHERE user_id = ? AND day = ?"),
    purgeUsage: db.prepare("DELETE FROM usage_calls WHERE at < ?"),
    purgeDays: db.prepare("DELETE FROM usage_days WHERE day < ?"),
    countSessions: db.prepare("SELECT COUNT(*) AS count FROM sessions"),
    getData: db.prepare("SELECT value FROM user_data WHERE user_id = ? AND kind = ? AND name = ?"),
    listData: db.prepare("SELECT name, value FROM user_data WHERE user_id = ? AND kind = ? ORDER BY name"),
    setData: db.prepare(
      "INSERT INTO user_data (user_id, kind, name, value) VALUES (?, ?, ?, ?) ON CONFLICT (user_id, kind, name) DO UPDATE SET value = excluded.value",
    ),
    deleteData: db.prepare("DELETE FROM user_data WHERE user_id = ? AND kind = ? AND name = ?"),
    deleteKind: db.prepare("DELETE FROM user_data WHERE user_id = ? AND kind = ?"),
    deleteUser: db.prepare("DELETE FROM user_data WHERE user_id = ?"),
  };
}

/** The store's multi-statement writes, each one transaction. */
interface Transactions {
  append(sessionId: string, entries: readonly HistoryEntry[]): void;
  endTurn(sessionId: string, entries: readonly HistoryEntry[], turnId: string, status: TurnStatus, record: SessionRecord): void;
  remove(userId: string): void;
  removeAll(userIds: readonly string[]): void;
  recordUsage(record: UsageRecord): void;
}

/**
 * Conversations are private: the folder is created 0700 and the file 0600 before SQLite opens
 * it, whatever the umask. SQLite gives its -wal and -shm files the database file's mode.
 */
function ownerOnlyDatabase(file: string): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  closeSync(openSync(file, "a", 0o600));
  for (const existing of [file, `${file}-wal`, `${file}-shm`]) {
    if (existsSync(existing)) chmodSync(existing, 0o600);
  }
}

export class SqliteStore implements SessionStore {
  readonly #db: Database.Database;
  readonly #sql: ReturnType<typeof prepareStatements>;
  /** Transaction wrappers, built once like the statements (building one per call showed in profiles). */
  readonly #tx: Transactions;
  readonly #locks = new MemoryUserData();
  #nextSeq = new Map<string, number>();

  /** Opens (creating if needed) and migrates the database; throws StoreError with a clear reason. */
  constructor(file: string) {
    try {
      if (file !== ":memory:") ownerOnlyDatabase(file);
      this.#db = new Database(file);
      this.#db.pragma("journal_mode = WAL");
      this.#db.pragma("synchronous = NORMAL");
      this.#db.pragma("busy_timeout = 5000");
      this.#migrate(file);
      this.#sql = prepareStatements(this.#db);
      this.#tx = this.#transactions();
      this.#savepoint = this.#db.transaction((work: () => unknown) => work());
    } catch (error) {
      if (error instanceof StoreError) throw error;
      throw new StoreError(`cannot open the session database ${file}: ${(error as Error).message}`, { cause: error });
    }
  }

  #migrate(file: string): void {
    const version = Number(this.#db.pragma("user_version", { simple: true }));
    if (version > SCHEMA_VERSION) {
      this.#db.close();
      throw new StoreError(
        `the session database ${file} has schema version ${version}, newer than this server understands (${SCHEMA_VERSION}): upgrade the server or point session.sqlite_path elsewhere`,
      );
    }
    for (let next = version; next < SCHEMA_VERSION; next++) {
      this.#db.transaction(() => {
        this.#db.exec(MIGRATIONS[next] ?? "");
        this.#db.pragma(`user_version = ${next + 1}`);
      })();
    }
  }

  #seqFor(sessionId: string): number {
    let next = this.#nextSeq.get(sessionId);
    if (next === undefined) {
      const row = this.#sql.maxSeq.get(sessionId) as { seq: number | null } | undefined;
      next = (row?.seq ?? -1) + 1;
    }
    return next;
  }

  load(userId: string, maxEntries: number): Promise<StoredSession | undefined> {
    return this.#run(() => {
      const row = this.#sql.session.get(userId) as SessionRow | undefined;
      if (!row) return undefined;
      // A turn still `running` in the file belonged to a server that died under it.
      this.#sql.interruptRunning.run(row.session_id);
      const rows = this.#sql.newestEntries.all(row.session_id, maxEntries) as EntryRow[];
      const entries: HistoryEntry[] = [];
      for (const entryRow of rows.reverse()) {
        const entry = storedEntry(
          entryRow.turn_id,
          parseJson(entryRow.message),
          entryRow.status,
          entryRow.tool ? parseJson(entryRow.tool) : undefined,
        );
        if (entry) entries.push(entry);
      }
      return {
        record: {
          userId: row.user_id,
          sessionId: row.session_id,
          createdAt: row.created_at,
          lastActivity: row.last_activity,
          messageCount: row.message_count,
        },
        entries,
      };
    });
  }

  saveSession(record: SessionRecord): Promise<void> {
    return this.#run(() => this.#saveSession(record));
  }

  #saveSession(record: SessionRecord): void {
    this.#sql.saveSession.run(record.userId, record.sessionId, record.createdAt, record.lastActivity, record.messageCount);
  }

  append(sessionId: string, entries: readonly HistoryEntry[]): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    return this.#run(() => this.#tx.append(sessionId, entries));
  }

  #append(sessionId: string, entries: readonly HistoryEntry[]): void {
    let seq = this.#seqFor(sessionId);
    for (const entry of entries) {
      this.#sql.insertEntry.run(
        sessionId,
        seq++,
        entry.turnId,
        JSON.stringify(entry.message),
        entry.status ?? null,
        entry.tool ? JSON.stringify(entry.tool) : null,
      );
    }
    this.#nextSeq.set(sessionId, seq);
  }

  #transactions(): Transactions {
    const db = this.#db;
    return {
      append: db.transaction((sessionId: string, entries: readonly HistoryEntry[]) => this.#append(sessionId, entries)),
      endTurn: db.transaction(
        (sessionId: string, entries: readonly HistoryEntry[], turnId: string, status: TurnStatus, record: SessionRecord) => {
          this.#append(sessionId, entries);
          this.#sql.setStatus.run(status, sessionId, turnId);
          this.#saveSession(record);
        },
      ),
      remove: db.transaction((userId: string) => this.#remove(userId)),
      removeAll: db.transaction((userIds: readonly string[]) => userIds.forEach((userId) => this.#remove(userId))),
      recordUsage: db.transaction(({ userId, sessionId, turnId, at, day, usage }: UsageRecord) => {
        this.#sql.insertUsage.run(
          userId,
          sessionId,
          turnId,
          at,
          usage.prompt_tokens,
          usage.completion_tokens,
          usage.cached_tokens,
          usage.total_tokens,
          usage.estimated ? 1 : 0,
        );
        this.#sql.addDay.run(userId, day, usage.total_tokens);
      }),
    };
  }

  setTurnStatus(sessionId: string, turnId: string, status: TurnStatus): Promise<void> {
    return this.#run(() => {
      this.#sql.setStatus.run(status, sessionId, turnId);
    });
  }

  /** One transaction for the end of a turn: one fsync-worthy commit instead of three. */
  endTurn(sessionId: string, entries: readonly HistoryEntry[], turnId: string, status: TurnStatus, record: SessionRecord): Promise<void> {
    return this.#run(() => this.#tx.endTurn(sessionId, entries, turnId, status, record));
  }

  remove(userId: string): Promise<void> {
    return this.#run(() => {
      this.#tx.remove(userId);
    });
  }

  #remove(userId: string): void {
    const row = this.#sql.sessionIdOf.get(userId) as { session_id: string } | undefined;
    if (!row) return;
    this.#sql.deleteEntries.run(row.session_id);
    this.#sql.deleteSession.run(userId);
    this.#nextSeq.delete(row.session_id);
  }

  recordUsage(record: UsageRecord): Promise<void> {
    return this.#run(() => this.#tx.recordUsage(record));
  }

  usage(userId: string, day: string): Promise<UsageSummary> {
    return this.#run(() => {
      const row = this.#sql.usageTotal.get(userId) as {
        prompt: number;
        completion: number;
        cached: number;
        total: number;
        calls: number;
        estimated: number;
      };
      const today = this.#sql.usageDay.get(userId, day) as { tokens: number } | undefined;
      return {
        total: {
          prompt_tokens: row.prompt,
          completion_tokens: row.completion,
          cached_tokens: row.cached,
          total_tokens: row.total,
          model_calls: row.calls,
          ...(row.estimated ? { estimated: true } : {}),
        },
        today: today?.tokens ?? 0,
      };
    });
  }

  countSessions(): Promise<number> {
    return this.#run(() => (this.#sql.countSessions.get() as { count: number }).count);
  }

  getUserData(userId: string, kind: string, name: string): Promise<string | undefined> {
    return this.#run(() => (this.#sql.getData.get(userId, kind, name) as { value: string } | undefined)?.value);
  }

  listUserData(userId: string, kind: string): Promise<{ name: string; value: string }[]> {
    return this.#run(() => this.#sql.listData.all(userId, kind) as { name: string; value: string }[]);
  }

  setUserData(userId: string, kind: string, name: string, value: string): Promise<void> {
    return this.#run(() => {
      this.#sql.setData.run(userId, kind, name, value);
    });
  }

  deleteUserData(userId: string, kind: string, name?: string): Promise<void> {
    return this.#run(() => {
      if (name === undefined) this.#sql.deleteKind.run(userId, kind);
      else this.#sql.deleteData.run(userId, kind, name);
    });
  }

  takeUserData(userId: string, kind: string, name: string): Promise<string | undefined> {
    // One call runs alone between two awaits of this process: read and delete cannot interleave.
    return this.#run(() => {
      const row = this.#sql.getData.get(userId, kind, name) as { value: string } | undefined;
      if (row) this.#sql.deleteData.run(userId, kind, name);
      return row?.value;
    });
  }

  // SQLite serves one instance: its locks are this process's.
  lock(name: string, ttlMs: number): Promise<string | undefined> {
    return this.#locks.lock(name, ttlMs);
  }

  unlock(name: string, token: string): Promise<void> {
    return this.#locks.unlock(name, token);
  }

  purge(cutoff: number, live: ReadonlySet<string>): Promise<string[]> {
    return this.#run(() => {
      // Usage records go with the same retention; the day counts only once their day is over.
      this.#sql.purgeUsage.run(cutoff);
      this.#sql.purgeDays.run(new Date(Math.min(cutoff, Date.now() - 86_400_000)).toISOString().slice(0, 10));
      const old = this.#sql.idleSince.all(cutoff) as { user_id: string; session_id: string }[];
      const doomed = old.filter((row) => !live.has(row.user_id)).map((row) => row.user_id);
      this.#tx.removeAll(doomed);
      // A purged user is gone: their OAuth tokens and the servers they added go too (a New chat keeps them).
      for (const userId of doomed) this.#sql.deleteUser.run(userId);
      return doomed;
    });
  }

  close(): Promise<void> {
    // Calls already made are committed first.
    this.#flush();
    if (this.#db.open) this.#db.close();
    return Promise.resolve();
  }

  /**
   * Group commit: every call made during one turn of the event loop runs, in call order, in one
   * transaction at its end (each call in a savepoint of its own, so one failure undoes only that
   * call), and its promise settles once that transaction is committed. With many users at once
   * this is one commit per loop turn instead of three per chat turn: the commits (and the WAL
   * checkpoints they bring) were the store's largest cost in a CPU profile (bench/profile.ts).
   * A failure (disk full, locked) becomes a rejected StoreError.
   */
  #run<T>(work: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ work, resolve: resolve as (value: unknown) => void, reject });
      if (this.#pending.length === 1) setImmediate(() => this.#flush());
    });
  }

  #pending: { work: () => unknown; resolve: (value: unknown) => void; reject: (error: Error) => void }[] = [];

  #flush(): void {
    const batch = this.#pending;
    this.#pending = [];
    if (batch.length === 0) return;
    const failure = (error: unknown) => new StoreError(`session database error: ${(error as Error).message}`, { cause: error });
    const outcomes: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
    try {
      if (!this.#db.open) throw new Error("the database is closed");
      this.#db.transaction(() => {
        for (const { work } of batch) {
          try {
            // Alone in its transaction, a call needs no savepoint: a failure undoes only it anyway.
            outcomes.push({ ok: true, value: batch.length === 1 ? work() : this.#savepoint(work) });
          } catch (error) {
            this.#nextSeq.clear();
            outcomes.push({ ok: false, error });
          }
        }
      })();
    } catch (error) {
      this.#nextSeq.clear();
      for (const { reject } of batch) reject(failure(error));
      return;
    }
    batch.forEach(({ resolve, reject }, index) => {
      const outcome = outcomes[index];
      if (outcome?.ok) resolve(outcome.value);
      else reject(failure(outcome?.error));
    });
  }

  /** Runs `work` in a savepoint (a better-sqlite3 transaction inside another one is a savepoint). */
  #savepoint!: (work: () => unknown) => unknown;
}
