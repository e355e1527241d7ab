// Each user's workspace folder, `workspace.root/<user_id>`: where their agent's file tools work.
import { mkdirSync } from "node:fs";
import { readdir, rm } from "node:fs/promises";
import path from "node:path";

export class Workspaces {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  dirFor(userId: string): string {
    return path.join(this.root, userId);
  }

  /** The user's folder, created (owner-only) if missing. */
  ensure(userId: string): string {
    const dir = this.dirFor(userId);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  /** Deletes everything in the user's folder, keeping the folder. */
  async clear(userId: string): Promise<void> {
    const dir = this.dirFor(userId);
    const names = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return [];
      throw error;
    });
    await Promise.all(names.map((name) => rm(path.join(dir, name), { recursive: true, force: true })));
  }
}
