// Which tool calls may change a user's workspace files, so the user's tabs hear about it. Pure.
import type { McpServerConfig } from "../config.ts";

/**
 * The read-only tools of @modelcontextprotocol/server-filesystem (and of the built-in that offers
 * the same tools). Every other tool of a filesystem server may write: write_file, edit_file,
 * create_directory, move_file, and any tool a newer version adds.
 */
const READ_ONLY_TOOLS = new Set([
  "read_file",
  "read_text_file",
  "read_media_file",
  "read_multiple_files",
  "list_directory",
  "list_directory_with_sizes",
  "directory_tree",
  "search_files",
  "get_file_info",
  "list_allowed_directories",
]);

/**
 * The servers rooted in the user's workspace: the one named `filesystem` (its stdio child gets
 * the workspace appended to its arguments) and any built-in filesystem entry.
 */
export function workspaceServers(servers: Record<string, McpServerConfig>): Set<string> {
  return new Set(
    Object.entries(servers).flatMap(([name, entry]) => (name === "filesystem" || String(entry.builtin) === "filesystem" ? [name] : [])),
  );
}

/** Whether a call of `tool` on `server` may have changed the workspace. */
export function changesWorkspace(workspaceServerNames: ReadonlySet<string>, server: string, tool: string): boolean {
  return workspaceServerNames.has(server) && !READ_ONLY_TOOLS.has(tool);
}
