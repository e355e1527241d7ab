// The server's folders are owner-only (0700): those it creates are made so, and those that already
// existed (from an older version, or made by hand under a loose umask) are tightened at start, so
// other local accounts cannot read conversations, logs or workspace files.
import { chmodSync, readdirSync, statSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";
import { resolveConfigPath, type Config } from "../config.ts";
import type { Logger } from "../log.ts";

/** Folders never changed, even when a setting points at them: they are shared with everything else. */
function isSharedFolder(dir: string, configDir: string): boolean {
  const shared = ["/", "/tmp", "/var", "/var/log", "/var/lib", "/home", "/srv", "/opt", homedir()];
  // The config folder itself (or one holding it): sessions.db beside the config is a choice, not ours to lock.
  return shared.includes(dir) || configDir === dir || configDir.startsWith(dir + path.sep);
}

/**
 * Each of the server's folders (workspace root and every user's workspace in it, the data folder,
 * the log folder) that exists and is open to group or others is set to 0700; returns those changed.
 */
export function tightenFolders(config: Config, log: Logger): string[] {
  const workspaceRoot = resolveConfigPath(config, config.workspace.root);
  const folders = [workspaceRoot, ...userFolders(workspaceRoot)];
  if (config.session.store === "sqlite") folders.push(path.dirname(resolveConfigPath(config, config.session.sqlite_path)));
  if (config.logger.transports.includes("file") || config.logger.type === "file") {
    folders.push(path.dirname(resolveConfigPath(config, config.logger.path ?? config.logger.path_settings.path_pattern)));
  }
  const changed: string[] = [];
  const uid = process.getuid?.();
  for (const dir of new Set(folders.map((folder) => path.resolve(folder)))) {
    if (isSharedFolder(dir, path.resolve(config.configDir))) continue;
    let mode: number;
    try {
      const stats = statSync(dir);
      if (!stats.isDirectory() || (uid !== undefined && stats.uid !== uid)) continue;
      mode = stats.mode & 0o777;
    } catch {
      continue; // not there yet: it is created 0700 when first needed
    }
    if ((mode & 0o077) === 0) continue;
    try {
      chmodSync(dir, 0o700);
      changed.push(dir);
      log.info("folder_tightened", { path: dir, was: mode.toString(8), now: "700" });
    } catch (error) {
      log.warn("folder_tighten_failed", { path: dir, error });
    }
  }
  return changed;
}

function userFolders(root: string): string[] {
  try {
    return readdirSync(root, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => path.join(root, entry.name));
  } catch {
    return [];
  }
}
