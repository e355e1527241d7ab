// MCP over a child's stdin/stdout, owning the child for its whole life.
// Unlike the SDK's StdioClientTransport, the child leads its own process group, so close() can
// stop the whole group (npx and shells start grandchildren), and its stderr goes to our log.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { ReadBuffer, serializeMessage } from "@modelcontextprotocol/sdk/shared/stdio.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { getDefaultEnvironment } from "@modelcontextprotocol/sdk/client/stdio.js";
import semver from "semver";
import { isRecord } from "../protocol.ts";
import { describeExit } from "./child-limits.ts";

export interface StdioParams {
  command: string;
  args: string[];
  /** Added to the SDK's minimal safe environment; nothing else of ours is inherited. */
  env: Record<string, string>;
  cwd?: string;
  /** The config keys of the command and the cwd, for errors that say which setting is wrong. */
  names?: { command: string; cwd: string };
  onStderrLine?: (line: string) => void;
  /** How long close() waits for the child to leave after stdin EOF, before signals. */
  gracefulCloseMs?: number;
  /** A line (one message) longer than this stops the child (limits.mcp_max_message_bytes). */
  maxLineBytes?: number;
  /** Called once the child has exited (its cgroup is removed there). */
  onExit?: () => void;
  /** The config key of the child's limits, named when it ends by hitting one. */
  limitsKey?: string;
}

export class ProcessGroupStdioTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;

  readonly #params: StdioParams;
  readonly #readBuffer = new ReadBuffer();
  #child: ChildProcess | undefined;
  #exited: Promise<void> | undefined;
  /** Bytes of the line being read, checked before the SDK's buffer keeps them. */
  #lineBytes = 0;
  /** Set once a line passed its cap: nothing more of this child is read. */
  #overflowed = false;
  /** Ids of our requests not answered yet: a line past the cap fails them with the reason. */
  readonly #outstanding = new Set<string | number>();
  #exitReason: string | undefined;

  constructor(params: StdioParams) {
    this.#params = params;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Why the child ended (a limit it hit, a signal, its exit code), once it has. */
  get exitReason(): string | undefined {
    return this.#exitReason;
  }

  start(): Promise<void> {
    if (this.#child) throw new Error("transport already started");
    // spawn() says ENOENT for a missing cwd as for a missing command: tell them apart first.
    const { cwd, names } = this.#params;
    if (cwd !== undefined && !existsSync(cwd)) {
      return Promise.reject(new Error(`the working folder ${cwd} does not exist (${names?.cwd ?? "cwd"})`));
    }
    return new Promise((resolve, reject) => {
      const child = spawn(this.#params.command, this.#params.args, {
        env: { ...getDefaultEnvironment(), ...this.#params.env },
        cwd: this.#params.cwd,
        stdio: ["pipe", "pipe", "pipe"],
        detached: true, // own process group: close() signals the group
        shell: false,
      });
      this.#child = child;
      this.#exited = new Promise((done) => child.once("close", () => done()));
      child.once("error", (error) => {
        reject(error);
        this.onerror?.(error);
      });
      child.once("spawn", () => resolve());
      child.once("close", (code, signal) => {
        this.#child = undefined;
        this.#exitReason = describeExit(code, signal, this.#params.limitsKey ?? "mcp.child_limits");
        this.#params.onExit?.();
        this.onclose?.();
      });
      child.stdin?.on("error", (error) => this.onerror?.(error));
      child.stdout?.on("data", (chunk: Buffer) => {
        if (this.#overflowed) return;
        const first = chunk.indexOf(10);
        // The line that was running (ended here or not), then the lines wholly in this chunk.
        const longest = first === -1 ? this.#lineBytes + chunk.length : Math.max(this.#lineBytes + first, longestLine(chunk));
        this.#lineBytes = first === -1 ? longest : chunk.length - chunk.lastIndexOf(10) - 1;
        const maxLineBytes = this.#params.maxLineBytes;
        if (maxLineBytes !== undefined && (longest > maxLineBytes || this.#lineBytes > maxLineBytes)) {
          // As below: the stream cannot be resynchronised, so the child is stopped and its call fails.
          this.#readBuffer.clear();
          this.#overflowed = true;
          const text = `the MCP server sent a message larger than ${maxLineBytes} bytes (limits.mcp_max_message_bytes)`;
          this.onerror?.(new Error(text));
          // The calls waiting here hear why, rather than "connection closed".
          for (const id of this.#outstanding) this.onmessage?.({ jsonrpc: "2.0", id, error: { code: -32603, message: text } });
          this.#outstanding.clear();
          void this.close();
          return;
        }
        try {
          this.#readBuffer.append(chunk);
        } catch (error) {
          // A message over the SDK's 10 MB line cap (e.g. the npm filesystem server's tree of a
          // huge folder) used to throw here, uncaught, and end our whole process. The stream
          // cannot be resynchronised: the child is stopped, its pending call fails, the next
          // call restarts it.
          this.#readBuffer.clear();
          this.onerror?.(error instanceof Error ? error : new Error(String(error)));
          void this.close();
          return;
        }
        for (;;) {
          let message: JSONRPCMessage | null;
          try {
            message = this.#readBuffer.readMessage();
          } catch (error) {
            this.onerror?.(error instanceof Error ? error : new Error(String(error)));
            continue;
          }
          if (message === null) break;
          if ("id" in message && !("method" in message) && message.id !== undefined) this.#outstanding.delete(message.id);
          this.onmessage?.(message);
        }
      });
      if (child.stderr) {
        const lines = createInterface({ input: child.stderr });
        lines.on("line", (line) => this.#params.onStderrLine?.(line));
      }
    });
  }

  send(message: JSONRPCMessage): Promise<void> {
    return new Promise((resolve, reject) => {
      const stdin = this.#child?.stdin;
      if (!stdin || stdin.destroyed) return reject(new Error("MCP server process is not running"));
      if ("method" in message && "id" in message) this.#outstanding.add(message.id);
      if (stdin.write(serializeMessage(message))) resolve();
      else stdin.once("drain", resolve);
    });
  }

  /** Ends stdin (a well-behaved server exits on EOF), then SIGTERM, then SIGKILL to the whole group. */
  async close(): Promise<void> {
    const child = this.#child;
    const exited = this.#exited;
    if (!child || !exited) return;
    const graceMs = this.#params.gracefulCloseMs ?? 1000;
    const waitExit = (ms: number) =>
      Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
    child.stdin?.end();
    if (!(await waitExit(graceMs))) {
      signalGroup(child, "SIGTERM");
      if (!(await waitExit(2000))) {
        signalGroup(child, "SIGKILL");
        await waitExit(2000);
      }
    }
    // The leader may exit while grandchildren linger in its group: make sure they go too.
    signalGroup(child, "SIGKILL");
    this.#readBuffer.clear();
  }
}

/** The longest newline-ended line wholly inside `chunk` (a chunk is one pipe read, at most 64 KB). */
function longestLine(chunk: Buffer): number {
  let longest = 0;
  for (let start = chunk.indexOf(10) + 1, at = chunk.indexOf(10, start); at !== -1; start = at + 1, at = chunk.indexOf(10, start))
    longest = Math.max(longest, at - start);
  return longest;
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // ESRCH: the group is already gone, which is what we want.
  }
}

/**
 * `npx -y <pkg> ...` whose package is installed locally becomes `node <its bin> ...`: no npx
 * process, no registry look-up, one process instead of three. Anything else is returned unchanged.
 */
export function resolveLocalNpx(
  command: string,
  args: readonly string[],
  searchDirs: readonly string[],
): { command: string; args: string[] } {
  const unchanged = { command, args: [...args] };
  if (path.basename(command) !== "npx") return unchanged;
  let index = 0;
  while (index < args.length && (args[index] === "-y" || args[index] === "--yes" || args[index] === "-q" || args[index] === "--quiet"))
    index++;
  const spec = args[index];
  if (!spec || spec.startsWith("-")) return unchanged;
  const at = spec.indexOf("@", 1);
  const pkg = at > 0 ? spec.slice(0, at) : spec;
  // `pkg@latest`, a tag, or a version the local copy does not satisfy: the real npx decides.
  const wanted = at > 0 ? spec.slice(at + 1) : undefined;
  for (const dir of searchDirs) {
    for (let current = path.resolve(dir); ; current = path.dirname(current)) {
      const manifestPath = path.join(current, "node_modules", pkg, "package.json");
      if (existsSync(manifestPath)) {
        if (wanted !== undefined && !satisfiesSpec(manifestPath, wanted)) return unchanged;
        const bin = binOf(manifestPath, pkg);
        if (bin) return { command: process.execPath, args: [bin, ...args.slice(index + 1)] };
        return unchanged;
      }
      if (path.dirname(current) === current) break;
    }
  }
  return unchanged;
}

/** Whether the installed package's version satisfies `wanted` (a version or a range; a tag never does). */
function satisfiesSpec(manifestPath: string, wanted: string): boolean {
  if (semver.validRange(wanted) === null) return false;
  const manifest = readManifest(manifestPath);
  const version = isRecord(manifest) && typeof manifest.version === "string" ? manifest.version : undefined;
  return version !== undefined && semver.satisfies(version, wanted);
}

function readManifest(manifestPath: string): unknown {
  try {
    return JSON.parse(readFileSync(manifestPath, "utf8"));
  } catch {
    return undefined;
  }
}

function binOf(manifestPath: string, pkg: string): string | undefined {
  let manifest: unknown;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
  } catch {
    return undefined;
  }
  if (typeof manifest !== "object" || manifest === null || !("bin" in manifest)) return undefined;
  const bin = manifest.bin;
  let relative: string | undefined;
  if (typeof bin === "string") relative = bin;
  else if (typeof bin === "object" && bin !== null) {
    const entries = Object.entries(bin).filter((entry): entry is [string, string] => typeof entry[1] === "string");
    const baseName = pkg.split("/").pop();
    relative = (entries.find(([name]) => name === baseName) ?? (entries.length === 1 ? entries[0] : undefined))?.[1];
  }
  if (!relative || !/\.(c|m)?js$/.test(relative)) return undefined;
  const file = path.resolve(path.dirname(manifestPath), relative);
  return existsSync(file) ? file : undefined;
}
