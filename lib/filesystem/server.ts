// The built-in filesystem: an in-process MCP server offering the tools of
// @modelcontextprotocol/server-filesystem (same names, descriptions, schemas and result texts),
// one instance for every user. Each call carries its user's workspace (WORKSPACE_META), which is
// the root of that call; the path check is ours (containment.ts), per call, with no shared state.
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { randomBytes } from "node:crypto";
import { constants, promises as fs, type Dirent } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import path from "node:path";
import { setImmediate as nextTurn } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import { Minimatch } from "minimatch";
import { z } from "zod";
import {
  applyFileEdits,
  formatSize,
  getFileStats,
  headFile,
  moveFile,
  tailFile,
} from "@modelcontextprotocol/server-filesystem/dist/lib.js";
import type { WorkspaceQuota } from "../files/quota.ts";
import { errorCode, errorMessage, isInside, openInWorkspace, pathOfHandle, realRoot, resolveInWorkspace, deniedBy } from "./containment.ts";

/** The `_meta` key of a tools/call request that names the caller's workspace folder. */
export const WORKSPACE_META = "mcp-agent-ws/workspace";

export interface FilesystemLimits {
  /** A text read longer than this (bytes) is cut with a note; edits of larger files are refused. */
  maxReadBytes: number;
  /** read_media_file refuses files larger than this (bytes): its result is the whole file. */
  maxMediaBytes: number;
  /** Directory entries one listing, tree or search may visit before it stops with a note. */
  maxEntries: number;
  /** A tree or search still walking after this long stops with a note. */
  walkTimeoutMs: number;
}

export interface FilesystemServerOptions extends FilesystemLimits {
  /** Real paths never served, even inside a workspace: the server's own files. */
  deny: readonly string[];
  /** The config key that sets the limits, for messages ("mcp.servers.filesystem"). */
  configKey: string;
  /** limits.workspace_bytes, shared with uploads: writes reserve their bytes here first. None: not metered. */
  quota?: WorkspaceQuota;
}

// The npm server's own table, exactly: read_media_file must answer as it does (the differential test
// compares byte for byte). The files API's wider table (downloads, previews) is lib/files/mime.ts.
const MIME_TYPES: Record<string, string> = {
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".bmp": "image/bmp",
  ".svg": "image/svg+xml",
  ".mp3": "audio/mpeg",
  ".wav": "audio/wav",
  ".ogg": "audio/ogg",
  ".flac": "audio/flac",
};

/** Entries visited by one walk, shared by its recursion. */
interface WalkBudget {
  left: number;
  deadline: number;
  /** Why the walk stopped early, if it did. */
  cut?: string;
}

type Extra = { _meta?: Record<string, unknown> };

function textResult(text: string): CallToolResult {
  return { content: [{ type: "text", text }], structuredContent: { content: text } };
}

/** Fills `buffer` from `position` on, or up to the end of the file; returns the bytes read. */
async function readFully(handle: FileHandle, buffer: Buffer, position: number): Promise<number> {
  let filled = 0;
  while (filled < buffer.length) {
    const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return filled;
}

interface TreeEntry {
  name: string;
  type: "file" | "directory";
  children?: TreeEntry[];
}

/**
 * JSON.stringify(tree, null, 2), byte for byte (the npm server's output), built a piece at a
 * time with a yield every 2,000 entries: one call for a tree of 100,000 files held the event
 * loop for tens of milliseconds.
 */
async function treeJson(tree: TreeEntry[]): Promise<string> {
  const parts: string[] = [];
  let written = 0;
  const write = async (entries: TreeEntry[], indent: string): Promise<void> => {
    if (entries.length === 0) {
      parts.push("[]");
      return;
    }
    const inner = `${indent}  `;
    const field = `${inner}  `;
    parts.push("[\n");
    for (const [index, entry] of entries.entries()) {
      parts.push(`${inner}{\n${field}"name": ${JSON.stringify(entry.name)},\n${field}"type": ${JSON.stringify(entry.type)}`);
      if (entry.children) {
        parts.push(`,\n${field}"children": `);
        await write(entry.children, field);
      }
      parts.push(`\n${inner}}${index < entries.length - 1 ? "," : ""}\n`);
      if (++written % 2000 === 0) await nextTurn();
    }
    parts.push(`${indent}]`);
  };
  await write(tree, "");
  return parts.join("");
}

export function createFilesystemServer(options: FilesystemServerOptions): McpServer {
  const { configKey } = options;
  // Compared with real paths, so made real too (once, on first use: some are created after start).
  let denyReal: Promise<string[]> | undefined;
  const realDeny = () => (denyReal ??= Promise.all(options.deny.map((file) => realRoot(file))));
  const server = new McpServer({ name: "secure-filesystem-server", version: "0.2.0" });

  /** The caller's workspace: set by our hub, never by the model (tool arguments cannot reach `_meta`). */
  function workspaceOf(extra: Extra): string {
    const root = extra._meta?.[WORKSPACE_META];
    if (typeof root !== "string" || !path.isAbsolute(root))
      throw new Error("No workspace for this call: the built-in filesystem serves mcp-agent-ws sessions only");
    return root;
  }

  async function resolve(extra: Extra, requested: string) {
    const result = await resolveInWorkspace(workspaceOf(extra), requested, { allowMissing: true, deny: await realDeny() });
    if (!result.ok) throw new Error(result.error);
    return result;
  }

  /** Creating something: the workspace folder itself is made now, owner-only, if it is not there yet. */
  async function resolveForWrite(extra: Extra, requested: string) {
    const valid = await resolve(extra, requested);
    await fs.mkdir(valid.root, { recursive: true, mode: 0o700 });
    return valid;
  }

  async function openForRead(rootReal: string, target: string) {
    const handle = await openInWorkspace(rootReal, target, constants.O_RDONLY, { deny: await realDeny() });
    const stats = await handle.stat();
    if (stats.isFile()) return { handle, size: stats.size };
    await handle.close();
    // The npm server's fs.readFile fails so on a directory; anything else that is not a plain
    // file (a FIFO, a device) is refused before it can block a thread.
    throw new Error(stats.isDirectory() ? "EISDIR: illegal operation on a directory, read" : `Not a regular file: ${target}`);
  }

  /** The file's text, cut to maxReadBytes with a note so a huge file is never loaded whole. */
  async function readText(rootReal: string, target: string): Promise<string> {
    const { handle, size } = await openForRead(rootReal, target);
    try {
      const buffer = Buffer.alloc(Math.min(size, options.maxReadBytes) + 1);
      const bytesRead = await readFully(handle, buffer, 0);
      if (bytesRead <= options.maxReadBytes) return buffer.subarray(0, bytesRead).toString("utf8");
      return `${buffer.subarray(0, options.maxReadBytes).toString("utf8")}\n\n[file cut: ${size} bytes, only the first ${options.maxReadBytes} are shown (${configKey}.max_read_bytes)]`;
    } finally {
      await handle.close();
    }
  }

  /** head/tail: the npm server's own functions for files within the cap; a bounded window beyond it. */
  async function readLines(rootReal: string, target: string, which: "head" | "tail", lines: number): Promise<string> {
    const { handle, size } = await openForRead(rootReal, target);
    try {
      if (size <= options.maxReadBytes) {
        const exact = await pathOfHandle(handle, target);
        return which === "head" ? await headFile(exact, lines) : await tailFile(exact, lines);
      }
      const window = Buffer.alloc(options.maxReadBytes);
      const bytesRead = await readFully(handle, window, which === "head" ? 0 : size - window.length);
      const all = window.subarray(0, bytesRead).toString("utf8").replace(/\r\n/g, "\n").split("\n");
      // The window's edge line is partial: dropped unless it is all there is.
      const whole = which === "head" ? all.slice(0, Math.max(1, all.length - 1)) : all.slice(Math.min(1, all.length - 1));
      const picked = which === "head" ? whole.slice(0, lines) : whole.slice(-lines);
      const note =
        picked.length < lines
          ? `\n\n[file cut: ${size} bytes; only ${which === "head" ? "the first" : "the last"} ${options.maxReadBytes} bytes were read (${configKey}.max_read_bytes)]`
          : "";
      return picked.join("\n") + note;
    } finally {
      await handle.close();
    }
  }

  /** A directory's entries in the npm server's order (fs.readdir sorts names bytewise), within the budget. */
  async function readDirectory(dir: string, budget: WalkBudget): Promise<Dirent[]> {
    const entries: Dirent[] = [];
    if (budget.cut) return entries;
    // Worded as the npm server's fs.readdir would fail, so both servers give the model one text.
    const handle = await fs.opendir(dir, { bufferSize: 256 }).catch((error: unknown) => {
      if (error instanceof Error) error.message = error.message.replace(/, opendir '/, ", scandir '");
      throw error;
    });
    try {
      for (;;) {
        if (budget.left <= 0) {
          budget.cut = `stopped after ${options.maxEntries} entries (${configKey}.max_entries)`;
          break;
        }
        if (Date.now() > budget.deadline) {
          budget.cut = `stopped after ${options.walkTimeoutMs / 1000} s (${configKey}.walk_timeout_seconds)`;
          break;
        }
        const entry = await handle.read();
        if (!entry) break;
        entries.push(entry);
        budget.left--;
        // A big directory must not hold the event loop: other users' turns run in between.
        if (budget.left % 1000 === 0) await nextTurn();
      }
    } finally {
      await handle.close().catch(() => undefined);
    }
    const keyed = entries.map((entry) => ({ entry, key: Buffer.from(entry.name) }));
    keyed.sort((a, b) => Buffer.compare(a.key, b.key));
    return keyed.map(({ entry }) => entry);
  }

  function newBudget(): WalkBudget {
    return { left: options.maxEntries, deadline: Date.now() + options.walkTimeoutMs };
  }

  /** The workspace root before its first write: an empty folder, as the npm server would see it. */
  async function listedEntries(target: { path: string; root: string; exists: boolean }, budget: WalkBudget): Promise<Dirent[]> {
    if (!target.exists && target.path === target.root) return [];
    return readDirectory(target.path, budget);
  }

  function cutNote(budget: WalkBudget): string {
    return budget.cut ? `\n\n[listing cut: ${budget.cut}]` : "";
  }

  const readTextFileHandler = async (args: { path: string; tail?: number; head?: number }, extra: Extra): Promise<CallToolResult> => {
    const valid = await resolve(extra, args.path);
    if (args.head && args.tail) throw new Error("Cannot specify both head and tail parameters simultaneously");
    const content = args.tail
      ? await readLines(valid.root, valid.path, "tail", args.tail)
      : args.head
        ? await readLines(valid.root, valid.path, "head", args.head)
        : await readText(valid.root, valid.path);
    return { content: [{ type: "text", text: content }], structuredContent: { content } };
  };

  const readTextInput = {
    path: z.string(),
    tail: z.number().optional().describe("If provided, returns only the last N lines of the file"),
    head: z.number().optional().describe("If provided, returns only the first N lines of the file"),
  };
  const contentOutput = { content: z.string() };
  const readOnly = { readOnlyHint: true, openWorldHint: false };

  server.registerTool(
    "read_file",
    {
      title: "Read File (Deprecated)",
      description: "Read the complete contents of a file as text. DEPRECATED: Use read_text_file instead.",
      inputSchema: readTextInput,
      outputSchema: contentOutput,
      annotations: readOnly,
    },
    readTextFileHandler,
  );

  server.registerTool(
    "read_text_file",
    {
      title: "Read Text File",
      description:
        "Read the complete contents of a file from the file system as text. " +
        "Handles various text encodings and provides detailed error messages " +
        "if the file cannot be read. Use this tool when you need to examine " +
        "the contents of a single file. Use the 'head' parameter to read only " +
        "the first N lines of a file, or the 'tail' parameter to read only " +
        "the last N lines of a file. Operates on the file as text regardless of extension. " +
        "Only works within allowed directories.",
      inputSchema: readTextInput,
      outputSchema: contentOutput,
      annotations: readOnly,
    },
    readTextFileHandler,
  );

  server.registerTool(
    "read_media_file",
    {
      title: "Read Media File",
      description:
        "Read a file and return it as a base64-encoded content block with its MIME type. " +
        "Image and audio files are returned as image/audio content; any other file type is " +
        "returned as an embedded resource. Only works within allowed directories.",
      inputSchema: { path: z.string() },
      outputSchema: {
        content: z.array(
          z.union([
            z.object({ type: z.enum(["image", "audio"]), data: z.string(), mimeType: z.string() }),
            z.object({
              type: z.literal("resource"),
              resource: z.object({ uri: z.string(), mimeType: z.string().optional(), blob: z.string() }),
            }),
          ]),
        ),
      },
      annotations: readOnly,
    },
    async (args, extra) => {
      const valid = await resolve(extra, args.path);
      const mimeType = MIME_TYPES[path.extname(valid.path).toLowerCase()] ?? "application/octet-stream";
      const { handle, size } = await openForRead(valid.root, valid.path);
      let data: string;
      try {
        if (size > options.maxMediaBytes) {
          throw new Error(
            `File too large for read_media_file: ${size} bytes (the limit is ${options.maxMediaBytes}, ${configKey}.max_media_bytes)`,
          );
        }
        data = (await handle.readFile()).toString("base64");
      } finally {
        await handle.close();
      }
      const item = mimeType.startsWith("image/")
        ? { type: "image" as const, data, mimeType }
        : mimeType.startsWith("audio/")
          ? { type: "audio" as const, data, mimeType }
          : { type: "resource" as const, resource: { uri: pathToFileURL(valid.path).href, mimeType, blob: data } };
      return { content: [item], structuredContent: { content: [item] } };
    },
  );

  server.registerTool(
    "read_multiple_files",
    {
      title: "Read Multiple Files",
      description:
        "Read the contents of multiple files simultaneously. This is more " +
        "efficient than reading files one by one when you need to analyze " +
        "or compare multiple files. Each file's content is returned with its " +
        "path as a reference. Failed reads for individual files won't stop " +
        "the entire operation. Only works within allowed directories.",
      inputSchema: {
        paths: z
          .array(z.string())
          .min(1)
          .describe("Array of file paths to read. Each path must be a string pointing to a valid file within allowed directories."),
      },
      outputSchema: contentOutput,
      annotations: readOnly,
    },
    async (args, extra) => {
      // One at a time, within one budget of maxReadBytes for the whole call: a list of many
      // large files cannot make one call hold many times the cap.
      let budget = options.maxReadBytes;
      const results: string[] = [];
      for (const filePath of args.paths) {
        try {
          if (budget <= 0) throw new Error(`not read: this call already read ${options.maxReadBytes} bytes (${configKey}.max_read_bytes)`);
          const valid = await resolve(extra, filePath);
          const content = await readText(valid.root, valid.path);
          budget -= Buffer.byteLength(content);
          results.push(`${filePath}:\n${content}\n`);
        } catch (error) {
          results.push(`${filePath}: Error - ${errorMessage(error)}`);
        }
      }
      return textResult(results.join("\n---\n"));
    },
  );

  server.registerTool(
    "write_file",
    {
      title: "Write File",
      description:
        "Create a new file or completely overwrite an existing file with new content. " +
        "Use with caution as it will overwrite existing files without warning. " +
        "Handles text content with proper encoding. Only works within allowed directories.",
      inputSchema: { path: z.string(), content: z.string() },
      outputSchema: contentOutput,
      annotations: { readOnlyHint: false, idempotentHint: true, destructiveHint: true, openWorldHint: false },
    },
    async (args, extra) => {
      const valid = await resolveForWrite(extra, args.path);
      const replaced = valid.exists ? await fs.stat(valid.path).then((stats) => (stats.isFile() ? stats.size : 0)) : 0;
      const release = await reserve(valid.root, Buffer.byteLength(args.content, "utf8"), replaced);
      try {
        await writeFileContent(valid.root, valid.path, args.content);
      } finally {
        release();
      }
      return textResult(`Successfully wrote to ${args.path}`);
    },
  );

  /**
   * Holds `bytes` against the workspace's quota (limits.workspace_bytes) until the returned
   * function is called, or throws the quota's refusal. Without a quota: nothing to hold.
   */
  async function reserve(rootReal: string, bytes: number, replacedBytes: number): Promise<() => void> {
    if (!options.quota) return () => undefined;
    const decision = await options.quota.reserve(rootReal, bytes, replacedBytes);
    if (!decision.ok) throw new Error(`Not written: ${decision.error}`);
    return () => decision.reservation.release();
  }

  /**
   * The npm server's writeFileContent (exclusive create, else a temp file renamed over the
   * target, which never follows a symlink), with our opens: owner-only mode (its files get the
   * umask's 0644) and the opened file checked to be inside the workspace.
   */
  async function writeFileContent(rootReal: string, target: string, content: string): Promise<void> {
    const writeNew = async (file: string) => {
      const handle = await openInWorkspace(rootReal, file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, {
        mode: 0o600,
        deny: await realDeny(),
      });
      try {
        await handle.writeFile(content, "utf8");
      } finally {
        await handle.close();
      }
    };
    try {
      await writeNew(target);
      return;
    } catch (error) {
      if (errorCode(error) !== "EEXIST") throw error;
    }
    const original = await fs.stat(target);
    const temp = `${target}.${randomBytes(16).toString("hex")}.tmp`;
    try {
      await writeNew(temp);
      await fs.rename(temp, target);
    } catch (error) {
      await fs.unlink(temp).catch(() => undefined);
      throw error;
    }
    // The rename replaced the inode: the original file's permission bits are put back.
    await fs.chmod(target, original.mode & 0o777).catch(() => undefined);
  }

  server.registerTool(
    "edit_file",
    {
      title: "Edit File",
      description:
        "Make line-based edits to a text file. Each edit replaces exact line sequences " +
        "with new content. Returns a git-style diff showing the changes made. " +
        "Only works within allowed directories.",
      inputSchema: {
        path: z.string(),
        edits: z.array(
          z.object({
            oldText: z.string().describe("Text to search for - must match exactly"),
            newText: z.string().describe("Text to replace with"),
          }),
        ),
        dryRun: z.boolean().default(false).describe("Preview changes using git-style diff format"),
      },
      outputSchema: contentOutput,
      annotations: { readOnlyHint: false, idempotentHint: false, destructiveHint: true, openWorldHint: false },
    },
    async (args, extra) => {
      const valid = await resolve(extra, args.path);
      if (valid.exists) {
        // Checked through a verified open just before the npm server's applyFileEdits reads it by path.
        const { handle, size } = await openForRead(valid.root, valid.path);
        await handle.close();
        if (size > options.maxReadBytes)
          throw new Error(`File too large to edit: ${size} bytes (the limit is ${options.maxReadBytes}, ${configKey}.max_read_bytes)`);
        if (!args.dryRun && options.quota) return textResult(await meteredEdit(valid.root, valid.path, size, args.edits));
      }
      return textResult(await applyFileEdits(valid.path, args.edits, args.dryRun));
    },
  );

  /**
   * An edit under the quota: its growth is reserved first (each edit's new text, indented at most
   * as deep as the file's deepest line); a file that grew past that anyway gets its old content back.
   */
  async function meteredEdit(rootReal: string, target: string, size: number, edits: { oldText: string; newText: string }[]) {
    const original = await fs.readFile(target);
    const deepestIndent = Math.max(
      0,
      ...original
        .toString("utf8")
        .split("\n")
        .map((line) => line.length - line.trimStart().length),
    );
    const bound = edits.reduce((sum, edit) => {
      const text = Buffer.byteLength(edit.newText, "utf8");
      return sum + text + edit.newText.split("\n").length * deepestIndent;
    }, 0);
    const release = await reserve(rootReal, size + bound, size);
    try {
      const diff = await applyFileEdits(target, edits, false);
      const now = await fs.stat(target);
      if (now.size > size + bound) {
        await writeFileContent(rootReal, target, original.toString("utf8"));
        throw new Error(`Not written: the edit would grow the file past what limits.workspace_bytes leaves room for`);
      }
      return diff;
    } finally {
      release();
    }
  }

  server.registerTool(
    "create_directory",
    {
      title: "Create Directory",
      description:
        "Create a new directory or ensure a directory exists. Can create multiple " +
        "nested directories in one operation. If the directory already exists, " +
        "this operation will succeed silently. Perfect for setting up directory " +
        "structures for projects or ensuring required paths exist. Only works within allowed directories.",
      inputSchema: { path: z.string() },
      outputSchema: contentOutput,
      annotations: { readOnlyHint: false, idempotentHint: true, destructiveHint: false, openWorldHint: false },
    },
    async (args, extra) => {
      const valid = await resolveForWrite(extra, args.path);
      await fs.mkdir(valid.path, { recursive: true, mode: 0o700 });
      const now = await fs.realpath(valid.path);
      if (!isInside(now, valid.root))
        throw new Error(`Access denied - ${valid.path} changed while it was being created (now ${now}), outside allowed directories`);
      return textResult(`Successfully created directory ${args.path}`);
    },
  );

  server.registerTool(
    "list_directory",
    {
      title: "List Directory",
      description:
        "Get a detailed listing of all files and directories in a specified path. " +
        "Results clearly distinguish between files and directories with [FILE] and [DIR] " +
        "prefixes. This tool is essential for understanding directory structure and " +
        "finding specific files within a directory. Only works within allowed directories.",
      inputSchema: { path: z.string() },
      outputSchema: contentOutput,
      annotations: readOnly,
    },
    async (args, extra) => {
      const valid = await resolve(extra, args.path);
      const budget = newBudget();
      const entries = await listedEntries(valid, budget);
      const text = entries.map((entry) => `${entry.isDirectory() ? "[DIR]" : "[FILE]"} ${entry.name}`).join("\n");
      return textResult(text + cutNote(budget));
    },
  );

  server.registerTool(
    "list_directory_with_sizes",
    {
      title: "List Directory with Sizes",
      description:
        "Get a detailed listing of all files and directories in a specified path, including sizes. " +
        "Results clearly distinguish between files and directories with [FILE] and [DIR] " +
        "prefixes. This tool is useful for understanding directory structure and " +
        "finding specific files within a directory. Only works within allowed directories.",
      inputSchema: {
        path: z.string(),
        sortBy: z.enum(["name", "size"]).optional().default("name").describe("Sort entries by name or size"),
      },
      outputSchema: contentOutput,
      annotations: readOnly,
    },
    async (args, extra) => {
      const valid = await resolve(extra, args.path);
      const budget = newBudget();
      const entries = await listedEntries(valid, budget);
      const detailed = await Promise.all(
        entries.map(async (entry) => {
          // As the npm server, the size of what an entry points to; but never of a file outside.
          const entryPath = path.join(valid.path, entry.name);
          const outside = entry.isSymbolicLink() && !isInside(await fs.realpath(entryPath).catch(() => "/"), valid.root);
          const size = outside
            ? 0
            : await fs.stat(entryPath).then(
                (stats) => stats.size,
                () => 0,
              );
          return { name: entry.name, isDirectory: entry.isDirectory(), size };
        }),
      );
      const sorted = [...detailed].sort((a, b) => (args.sortBy === "size" ? b.size - a.size : a.name.localeCompare(b.name)));
      const lines = sorted.map(
        (entry) =>
          `${entry.isDirectory ? "[DIR]" : "[FILE]"} ${entry.name.padEnd(30)} ${entry.isDirectory ? "" : formatSize(entry.size).padStart(10)}`,
      );
      const totalFiles = detailed.filter((entry) => !entry.isDirectory).length;
      const totalDirs = detailed.length - totalFiles;
      const totalSize = detailed.reduce((sum, entry) => sum + (entry.isDirectory ? 0 : entry.size), 0);
      const text = [...lines, "", `Total: ${totalFiles} files, ${totalDirs} directories`, `Combined size: ${formatSize(totalSize)}`].join(
        "\n",
      );
      return textResult(text + cutNote(budget));
    },
  );

  server.registerTool(
    "directory_tree",
    {
      title: "Directory Tree",
      description:
        "Get a recursive tree view of files and directories as a JSON structure. " +
        "Each entry includes 'name', 'type' (file/directory), and 'children' for directories. " +
        "Files have no children array, while directories always have a children array (which may be empty). " +
        "The output is formatted with 2-space indentation for readability. Only works within allowed directories.",
      inputSchema: { path: z.string(), excludePatterns: z.array(z.string()).optional().default([]) },
      outputSchema: contentOutput,
      annotations: readOnly,
    },
    async (args, extra) => {
      const rootPath = args.path;
      const valid = await resolve(extra, rootPath);
      const budget = newBudget();
      const denied = await realDeny();
      // The npm server's exclusion rule: a pattern with * is a glob; a bare name matches that
      // name anywhere and everything below it. Compiled once per call, not once per entry.
      const excludes = args.excludePatterns.map((pattern) =>
        pattern.includes("*")
          ? [new Minimatch(pattern, { dot: true })]
          : [pattern, `**/${pattern}`, `**/${pattern}/**`].map((glob) => new Minimatch(glob, { dot: true })),
      );
      // `logical` is the path as the npm server builds it (the argument joined with names), for
      // the exclusion patterns; `real` is where it is on disk (a checked path plus plain names).
      const buildTree = async (logical: string, real: string, exists: boolean): Promise<TreeEntry[]> => {
        const entries = await listedEntries({ path: real, root: valid.root, exists }, budget);
        const result: TreeEntry[] = [];
        for (const entry of entries) {
          const relativePath = path.relative(rootPath, path.join(logical, entry.name));
          if (excludes.some((globs) => globs.some((glob) => glob.match(relativePath)))) continue;
          const realChild = path.join(real, entry.name);
          if (deniedBy(realChild, denied)) continue;
          const item: TreeEntry = { name: entry.name, type: entry.isDirectory() ? "directory" : "file" };
          if (entry.isDirectory()) item.children = await buildTree(path.join(logical, entry.name), realChild, true);
          result.push(item);
        }
        return result;
      };
      const tree = await buildTree(rootPath, valid.path, valid.exists);
      return textResult((await treeJson(tree)) + cutNote(budget));
    },
  );

  server.registerTool(
    "move_file",
    {
      title: "Move File",
      description:
        "Move or rename files and directories. Can move files between directories " +
        "and rename them in a single operation. If the destination exists, the " +
        "operation will fail. Works across different directories and can be used " +
        "for simple renaming within the same directory. Both source and destination must be within allowed directories.",
      inputSchema: { source: z.string(), destination: z.string() },
      outputSchema: contentOutput,
      annotations: { readOnlyHint: false, idempotentHint: false, destructiveHint: true, openWorldHint: false },
    },
    async (args, extra) => {
      const source = await resolve(extra, args.source);
      const destination = await resolve(extra, args.destination);
      await moveFile(source.path, destination.path);
      return textResult(`Successfully moved ${args.source} to ${args.destination}`);
    },
  );

  server.registerTool(
    "search_files",
    {
      title: "Search Files",
      description:
        "Recursively search for files and directories matching a pattern. " +
        "The patterns should be glob-style patterns that match paths relative to the working directory. " +
        "Use pattern like '*.ext' to match files in current directory, and '**/*.ext' to match files in all subdirectories. " +
        "Returns full paths to all matching items. Great for finding files when you don't know their exact location. " +
        "Only searches within allowed directories.",
      inputSchema: { path: z.string(), pattern: z.string(), excludePatterns: z.array(z.string()).optional().default([]) },
      outputSchema: contentOutput,
      annotations: readOnly,
    },
    async (args, extra) => {
      const valid = await resolve(extra, args.path);
      const budget = newBudget();
      const denied = await realDeny();
      const matcher = new Minimatch(args.pattern, { dot: true });
      const excludes = args.excludePatterns.map((pattern) => new Minimatch(pattern, { dot: true }));
      const results: string[] = [];
      // The npm server's searchFilesWithValidation, which checks each entry against its global
      // allowed directories: here an entry below a checked folder is inside unless it is a
      // symlink, whose target is checked against this call's root.
      const search = async (entries: Dirent[], current: string): Promise<void> => {
        for (const entry of entries) {
          const fullPath = path.join(current, entry.name);
          if (entry.isSymbolicLink()) {
            const target = await fs.realpath(fullPath).catch(() => undefined);
            if (!target || !isInside(target, valid.root)) continue;
          }
          if (deniedBy(fullPath, denied)) continue;
          const relativePath = path.relative(valid.path, fullPath);
          if (excludes.some((exclude) => exclude.match(relativePath))) continue;
          if (matcher.match(relativePath)) results.push(fullPath);
          // As the npm server: a folder that cannot be read is skipped, not an error.
          if (entry.isDirectory()) await search(await readDirectory(fullPath, budget).catch(() => []), fullPath);
        }
      };
      await search(await listedEntries(valid, budget), valid.path);
      const text = results.length > 0 ? results.join("\n") : "No matches found";
      return textResult(text + cutNote(budget));
    },
  );

  server.registerTool(
    "get_file_info",
    {
      title: "Get File Info",
      description:
        "Retrieve detailed metadata about a file or directory. Returns comprehensive " +
        "information including size, creation time, last modified time, permissions, " +
        "and type. This tool is perfect for understanding file characteristics " +
        "without reading the actual content. Only works within allowed directories.",
      inputSchema: { path: z.string() },
      outputSchema: contentOutput,
      annotations: readOnly,
    },
    async (args, extra) => {
      const valid = await resolve(extra, args.path);
      // The workspace before its first write is an empty folder; otherwise the stat is of the
      // inode a verified open holds.
      let info;
      if (!valid.exists) info = await getFileStats(valid.path);
      else {
        const handle = await openInWorkspace(valid.root, valid.path, constants.O_RDONLY, { deny: await realDeny() });
        try {
          info = await getFileStats(await pathOfHandle(handle, valid.path));
        } finally {
          await handle.close();
        }
      }
      const text = Object.entries(info)
        .map(([key, value]) => `${key}: ${String(value)}`)
        .join("\n");
      return textResult(text);
    },
  );

  server.registerTool(
    "list_allowed_directories",
    {
      title: "List Allowed Directories",
      description:
        "Returns the list of directories that this server is allowed to access. " +
        "Subdirectories within these allowed directories are also accessible. " +
        "Use this to understand which directories and their nested paths are available " +
        "before trying to access files.",
      inputSchema: {},
      outputSchema: contentOutput,
      annotations: readOnly,
    },
    async (_args, extra) => textResult(`Allowed directories:\n${await realRoot(workspaceOf(extra))}`),
  );

  return server;
}
