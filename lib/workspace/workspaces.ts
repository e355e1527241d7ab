// Each user's workspace folder, `workspace.root/<user_id>`: where their agent's file tools work.
import { mkdirSync } from "node:fs";
import { readdir, rm } from "node:fs/promises";
import path from "node:path";
import { CONFIG_FILE, resolveConfigPath, SECRETS_FILE, type Config } from "../config.ts";
import { WorkspaceQuota } from "../files/quota.ts";

/**
 * The folder under the workspace root where uploads are written until complete. `+` is not a
 * user id character (USER_ID_RULE), so no user's workspace can be this folder or see into it.
 */
const UPLOADS_FOLDER = "+uploads";

export class Workspaces {
  readonly root: string;
  /** limits.workspace_bytes, shared by uploads and the built-in filesystem's writes. */
  readonly quota: WorkspaceQuota;

  /** `workspaceBytes`: limits.workspace_bytes. */
  constructor(root: string, workspaceBytes = Number.MAX_SAFE_INTEGER) {
    this.root = root;
    this.quota = new WorkspaceQuota(workspaceBytes);
  }

  /** Where uploads in progress are written (owner-only, created on first use), outside every workspace. */
  uploadsDir(): string {
    const dir = path.join(this.root, UPLOADS_FOLDER);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
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

/**
 * The server's own files (config, secrets, database, log folder): never served by a file tool or the
 * files API, wherever the workspaces are. A folder that holds the workspaces (logs written beside
 * the config, say) is not one of them.
 */
export function serverOwnFiles(config: Config): string[] {
  const workspaceRoot = resolveConfigPath(config, config.workspace.root);
  const sqlitePath = resolveConfigPath(config, config.session.sqlite_path);
  return [
    ...[CONFIG_FILE, SECRETS_FILE].map((file) => path.join(config.configDir, file)),
    ...["", "-wal", "-shm", "-journal"].map((suffix) => sqlitePath + suffix),
    path.dirname(resolveConfigPath(config, config.logger.path ?? config.logger.path_settings.path_pattern)),
  ].filter((file) => workspaceRoot !== file && !workspaceRoot.startsWith(file + path.sep));
}
