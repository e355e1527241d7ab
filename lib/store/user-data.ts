// A user's small private records by kind and name (OAuth tokens, servers the user added), kept
// with the user in the session store, and the cross-instance lock that keeps a refresh single.
// Values are opaque strings: their owner encrypts what is secret (lib/oauth/vault.ts).
import { randomUUID } from "node:crypto";

export interface UserDataStore {
  getUserData(userId: string, kind: string, name: string): Promise<string | undefined>;
  listUserData(userId: string, kind: string): Promise<{ name: string; value: string }[]>;
  setUserData(userId: string, kind: string, name: string, value: string): Promise<void>;
  /** Deletes one record, or every record of that kind when `name` is undefined. */
  deleteUserData(userId: string, kind: string, name?: string): Promise<void>;
  /** Reads and deletes one record in one step: a second take gets nothing (single-use OAuth state). */
  takeUserData(userId: string, kind: string, name: string): Promise<string | undefined>;
  /** A lock held for at most `ttlMs` (by every instance sharing the store); its token, or undefined while someone holds it. */
  lock(name: string, ttlMs: number): Promise<string | undefined>;
  unlock(name: string, token: string): Promise<void>;
}

/** In memory: the memory store's records, and the locks of a store that serves one instance. */
export class MemoryUserData implements UserDataStore {
  readonly #records = new Map<string, Map<string, string>>();
  readonly #locks = new Map<string, { token: string; until: number }>();

  #kind(userId: string, kind: string, create: boolean): Map<string, string> | undefined {
    const key = `${userId}\n${kind}`;
    let records = this.#records.get(key);
    if (!records && create) this.#records.set(key, (records = new Map()));
    return records;
  }

  getUserData(userId: string, kind: string, name: string): Promise<string | undefined> {
    return Promise.resolve(this.#kind(userId, kind, false)?.get(name));
  }
  listUserData(userId: string, kind: string): Promise<{ name: string; value: string }[]> {
    return Promise.resolve([...(this.#kind(userId, kind, false) ?? new Map<string, string>())].map(([name, value]) => ({ name, value })));
  }
  setUserData(userId: string, kind: string, name: string, value: string): Promise<void> {
    this.#kind(userId, kind, true)?.set(name, value);
    return Promise.resolve();
  }
  deleteUserData(userId: string, kind: string, name?: string): Promise<void> {
    if (name === undefined) this.#records.delete(`${userId}\n${kind}`);
    else this.#kind(userId, kind, false)?.delete(name);
    return Promise.resolve();
  }
  takeUserData(userId: string, kind: string, name: string): Promise<string | undefined> {
    const records = this.#kind(userId, kind, false);
    const value = records?.get(name);
    records?.delete(name);
    return Promise.resolve(value);
  }
  lock(name: string, ttlMs: number): Promise<string | undefined> {
    const now = Date.now();
    const held = this.#locks.get(name);
    if (held && held.until > now) return Promise.resolve(undefined);
    const token = randomUUID();
    this.#locks.set(name, { token, until: now + ttlMs });
    return Promise.resolve(token);
  }
  unlock(name: string, token: string): Promise<void> {
    if (this.#locks.get(name)?.token === token) this.#locks.delete(name);
    return Promise.resolve();
  }
}
