// A user's sealed records in the store: JSON in, JSON out, encrypted with the vault and bound to
// (user, kind, name), so neither the store nor a copied value reveals or moves a secret.
import type { UserDataStore } from "../store/user-data.ts";
import type { Vault } from "./vault.ts";

export class SealedRecords {
  readonly store: UserDataStore;
  readonly #openVault: () => Vault;
  #opened: Vault | undefined;

  /** `vault`: called on first use, so a server that never seals anything never makes a key file. */
  constructor(store: UserDataStore, vault: () => Vault) {
    this.store = store;
    this.#openVault = vault;
  }

  async get(userId: string, kind: string, name: string): Promise<unknown> {
    const sealed = await this.store.getUserData(userId, kind, name);
    return sealed === undefined ? undefined : this.#open(sealed, userId, kind, name);
  }

  async take(userId: string, kind: string, name: string): Promise<unknown> {
    const sealed = await this.store.takeUserData(userId, kind, name);
    return sealed === undefined ? undefined : this.#open(sealed, userId, kind, name);
  }

  async list(userId: string, kind: string): Promise<{ name: string; value: unknown }[]> {
    const rows = await this.store.listUserData(userId, kind);
    return rows.map((row) => ({ name: row.name, value: this.#open(row.value, userId, kind, row.name) }));
  }

  async set(userId: string, kind: string, name: string, value: unknown): Promise<void> {
    await this.store.setUserData(userId, kind, name, this.#vault().seal(JSON.stringify(value), context(userId, kind, name)));
  }

  async delete(userId: string, kind: string, name?: string): Promise<void> {
    await this.store.deleteUserData(userId, kind, name);
  }

  #vault(): Vault {
    return (this.#opened ??= this.#openVault());
  }

  #open(sealed: string, userId: string, kind: string, name: string): unknown {
    return JSON.parse(this.#vault().open(sealed, context(userId, kind, name)));
  }
}

function context(userId: string, kind: string, name: string): string {
  return `${userId}\n${kind}\n${name}`;
}
