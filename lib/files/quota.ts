// limits.workspace_bytes as one ledger per workspace folder: uploads and the built-in filesystem's
// writes reserve their bytes here before writing, one decision at a time per workspace, so writes
// running together cannot pass the quota together.
import { formatBytes } from "./format.ts";
import { workspaceUsage } from "./listing.ts";

export type QuotaDecision = { ok: true; reservation: Reservation } | { ok: false; usedBytes: number; error: string };

/** Bytes a writer holds against the quota until its file is in place (then the walk counts them). */
export interface Reservation {
  readonly bytes: number;
  /** Reserves `bytes` more for the same write; the refusal (nothing reserved) when that would pass the quota. */
  grow(bytes: number): Promise<string | undefined>;
  /** Gives the bytes back; call once the file is in place (or the write failed). Idempotent. */
  release(): void;
}

export function quotaMessage(limitBytes: number, usedBytes: number): string {
  return (
    `the workspace is full: it may hold ${formatBytes(limitBytes)} (limits.workspace_bytes) and ` +
    `${formatBytes(usedBytes)} are used or being written. Delete files to make room`
  );
}

export class WorkspaceQuota {
  readonly limitBytes: number;
  /** Bytes reserved per workspace (its real path) by writes not finished yet. */
  readonly #reserved = new Map<string, number>();
  /** The decision running per workspace: the next one waits for it (a chain, dropped when idle). */
  readonly #turns = new Map<string, Promise<unknown>>();

  constructor(limitBytes: number) {
    this.limitBytes = limitBytes;
  }

  /** Bytes reserved now in the workspace at `rootReal` (for tests and listings). */
  reservedIn(rootReal: string): number {
    return this.#reserved.get(rootReal) ?? 0;
  }

  /**
   * Reserves `bytes` in the workspace at `rootReal` when what its regular files hold (walked now),
   * less `replacedBytes` (a file the write replaces), plus every reservation still open, leaves room.
   */
  reserve(rootReal: string, bytes: number, replacedBytes = 0): Promise<QuotaDecision> {
    return this.#serial(rootReal, async () => {
      const used = (await workspaceUsage(rootReal)) + this.reservedIn(rootReal);
      if (used - replacedBytes + bytes > this.limitBytes) return { ok: false, usedBytes: used, error: quotaMessage(this.limitBytes, used) };
      this.#add(rootReal, bytes);
      return { ok: true, reservation: this.#reservation(rootReal, bytes, replacedBytes) };
    });
  }

  #reservation(rootReal: string, initial: number, replacedBytes: number): Reservation {
    let held = initial;
    let released = false;
    const grow = async (bytes: number): Promise<string | undefined> => {
      if (released) throw new Error("the reservation was already released");
      return this.#serial(rootReal, async () => {
        const used = (await workspaceUsage(rootReal)) + this.reservedIn(rootReal);
        if (used - replacedBytes + bytes > this.limitBytes) return quotaMessage(this.limitBytes, used);
        this.#add(rootReal, bytes);
        held += bytes;
        return undefined;
      });
    };
    const release = (): void => {
      if (released) return;
      released = true;
      this.#add(rootReal, -held);
    };
    return {
      get bytes() {
        return held;
      },
      grow,
      release,
    };
  }

  #add(rootReal: string, bytes: number): void {
    const total = this.reservedIn(rootReal) + bytes;
    if (total <= 0) this.#reserved.delete(rootReal);
    else this.#reserved.set(rootReal, total);
  }

  async #serial<T>(key: string, run: () => Promise<T>): Promise<T> {
    const before = this.#turns.get(key) ?? Promise.resolve();
    const mine = before.then(run, run);
    const settled = mine.then(
      () => undefined,
      () => undefined,
    );
    this.#turns.set(key, settled);
    try {
      return await mine;
    } finally {
      if (this.#turns.get(key) === settled) this.#turns.delete(key);
    }
  }
}
