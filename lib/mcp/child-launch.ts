// How a stdio child is started: its per-user values and private folders, its sandbox and its
// limits. One ChildLauncher per agent server (its hub factory's), deciding once at start what
// this machine supports and warning about what it does not.
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import type { Config, McpServerConfig } from "../config.ts";
import type { Logger } from "../log.ts";
import { inCgroup, NICE_PATH, pidsCgroups, PRLIMIT_PATH, prlimitOptions, type ChildLimits, type PidsCgroups } from "./child-limits.ts";
import { ensurePrivateDirs, privateDirFor, privateEnv, type PerUserValues } from "./per-user-values.ts";
import { BWRAP_APT, detectSandbox, isWithin, sandboxedCommand, wouldExpose, type SandboxMode, type SandboxSupport } from "./sandbox.ts";

/** Whose child it is: a user's own (their workspace), or undefined for a `scope: shared` server. */
export interface ChildOwner {
  userId: string;
  workspaceDir: string;
}

/** A child ready to spawn, plus what to undo when it ends. */
export interface ChildLaunch {
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
  onExit: () => void;
}

export class ChildLauncher {
  readonly #config: Config;
  readonly #log: Logger;
  readonly #dataRoot: string;
  readonly #workspaceRoot: string;
  readonly #hidden: string[];
  #support: SandboxSupport | undefined;
  #cgroups: PidsCgroups | undefined | null = null;
  readonly #prlimit: string | undefined;
  readonly #nice: string | undefined;
  #warnedPrlimit = false;

  /** `hidden`: the server's own files (config, secrets, database, logs), never mounted in a sandbox. */
  constructor(config: Config, log: Logger, hidden: string[]) {
    this.#config = config;
    this.#log = log;
    this.#dataRoot = path.resolve(config.configDir, config.mcp.server_data_root ?? path.dirname(config.session.sqlite_path));
    this.#workspaceRoot = path.resolve(config.configDir, config.workspace.root);
    this.#hidden = [...hidden, this.#workspaceRoot, this.#dataRoot];
    this.#prlimit = existsSync(PRLIMIT_PATH) ? PRLIMIT_PATH : undefined;
    this.#nice = existsSync(NICE_PATH) ? NICE_PATH : undefined;
  }

  /** The per-user values of a user's child of `server`. */
  valuesFor(server: string, owner: ChildOwner): PerUserValues {
    return { user_id: owner.userId, workspace: owner.workspaceDir, user_data: privateDirFor(this.#dataRoot, server, owner.userId) };
  }

  /** Finds out (once, and only if some stdio server wants it) whether bubblewrap works, and says what it found. */
  checkSupport(): void {
    const stdio = Object.entries(this.#config.mcp.servers).filter(([, entry]) => entry.transport === "stdio" && !entry.builtin);
    const wanting = stdio.filter(([, entry]) => this.#modeOf(entry) !== "off");
    if (wanting.length > 0 && !this.#support) {
      this.#support = detectSandbox(path.resolve(this.#config.configDir, this.#config.mcp.bwrap_path));
      if (this.#support.ok) this.#log.info("mcp_sandbox", { bwrap: this.#support.bwrap, servers: wanting.map(([name]) => name) });
      else {
        const required = wanting.filter(([, entry]) => this.#modeOf(entry) === "required").map(([name]) => name);
        this.#log.warn("mcp_sandbox_unavailable", {
          message: `MCP stdio servers run WITHOUT a sandbox: ${this.#support.reason}. Every child can then read what this server's user can (other users' workspaces, the database, the secrets file).${required.length > 0 ? ` Servers that require a sandbox will not start: ${required.join(", ")}.` : ""} Install it with: ${BWRAP_APT}`,
        });
      }
    }
    if (!this.#prlimit && stdio.length > 0 && !this.#warnedPrlimit) {
      this.#warnedPrlimit = true;
      this.#log.warn("mcp_limits_unavailable", {
        message: `prlimit not found (${PRLIMIT_PATH}): MCP children run without memory, CPU and file limits; apt-get install -y util-linux`,
      });
    }
  }

  #modeOf(entry: McpServerConfig): SandboxMode {
    const own = entry.sandbox;
    if (own === true) return "required";
    if (own === false) return "off";
    return own ?? this.#config.mcp.sandbox;
  }

  #limitsOf(entry: McpServerConfig): ChildLimits {
    const defaults = this.#config.mcp.child_limits;
    const own = entry.limits;
    return {
      memory_mb: own.memory_mb ?? defaults.memory_mb,
      cpu_seconds: own.cpu_seconds ?? defaults.cpu_seconds,
      open_files: own.open_files ?? defaults.open_files,
      processes: own.processes ?? defaults.processes,
      nice: own.nice ?? defaults.nice,
    };
  }

  /**
   * The child of `server` for `owner` (or the shared one), from spawn parameters whose per-user
   * values are already filled in. Throws when the server requires a sandbox this machine cannot give.
   */
  launch(
    server: string,
    entry: McpServerConfig,
    params: { command: string; args: string[]; env: Record<string, string>; cwd?: string },
    owner: ChildOwner | undefined,
  ): ChildLaunch {
    // A command that is not there is reported as such by spawn (ENOENT), not as a sandbox that exited.
    if (!commandFound(params.command)) return { ...params, onExit: () => {} };
    const privateDir = privateDirFor(this.#dataRoot, server, owner?.userId);
    ensurePrivateDirs(this.#dataRoot, privateDir);
    if (owner) mkdirSync(owner.workspaceDir, { recursive: true, mode: 0o700 });
    const cwd = params.cwd ?? owner?.workspaceDir ?? privateDir;
    const env = { ...privateEnv(privateDir), ...params.env };
    const limits = this.#limitsOf(entry);
    const mode = this.#modeOf(entry);
    if (mode !== "off") this.checkSupport();
    const support = mode === "off" ? undefined : this.#support;
    if (mode === "required" && !support?.ok) {
      throw new Error(
        `MCP server "${server}" requires a sandbox (mcp.servers.${server}.sandbox / mcp.sandbox) and ${support?.ok === false ? support.reason : "bubblewrap is off"}`,
      );
    }
    const sandboxed = support?.ok === true;
    // Root is never held to RLIMIT_NPROC, and outside a user namespace of its own it counts every
    // process of our user: then the process count is a pids cgroup's, where we may make one.
    const nprocInside = sandboxed && process.getuid?.() !== 0;
    const prlimit = this.#prlimit ? { path: this.#prlimit, options: prlimitOptions(limits, nprocInside) } : undefined;
    let command = params.command;
    let args = params.args;
    if (sandboxed) {
      const writable = [...new Set([...(owner ? [owner.workspaceDir] : []), privateDir])];
      const readOnly = [...this.#config.mcp.read_only_paths, ...entry.read_only_paths].map((file) =>
        path.resolve(this.#config.configDir, file),
      );
      // A configured working folder elsewhere is there read-only, unless it holds what must stay out.
      if (!writable.some((dir) => isWithin(cwd, dir))) {
        if (wouldExpose(cwd, this.#hidden)) {
          throw new Error(
            `the working folder ${cwd} holds this server's own files (config, data, logs or the workspaces), so it is not mounted in the sandbox (mcp.servers.${server}.cwd): use {workspace} or {user_data}, or sandbox: false`,
          );
        }
        readOnly.push(cwd);
      }
      ({ command, args } = sandboxedCommand({
        bwrap: support.bwrap,
        command,
        args,
        cwd,
        writable,
        readOnly,
        network: entry.network,
        hidden: this.#hidden,
        prlimit,
      }));
    } else if (prlimit && prlimit.options.length > 0) {
      ({ command, args } = { command: prlimit.path, args: [...prlimit.options, "--", command, ...args] });
    }
    // Outside the sandbox, so that all of it (bwrap's own processes too) runs at that niceness.
    if (limits.nice > 0 && this.#nice) ({ command, args } = { command: this.#nice, args: ["-n", String(limits.nice), command, ...args] });
    let onExit = () => {};
    if (!nprocInside && limits.processes > 0) {
      const cgroups = this.#pidsCgroups();
      if (cgroups) {
        const group = cgroups.create(limits.processes);
        ({ command, args } = inCgroup(group.procsFile, command, args));
        onExit = () => cgroups.remove(group.dir);
      }
    }
    return { command, args, env, cwd, onExit };
  }

  #pidsCgroups(): PidsCgroups | undefined {
    if (this.#cgroups === null) {
      this.#cgroups = pidsCgroups();
      if (!this.#cgroups) {
        this.#log.warn("mcp_process_limit_unavailable", {
          message:
            process.getuid?.() === 0
              ? "running as root without a writable pids cgroup: mcp.child_limits.processes is not enforced for MCP children (root is exempt from RLIMIT_NPROC)"
              : "no writable pids cgroup: mcp.child_limits.processes is enforced only inside the sandbox",
        });
      } else this.#log.info("mcp_pids_cgroup", { cgroup: this.#cgroups.base });
    }
    return this.#cgroups;
  }
}

function commandFound(command: string): boolean {
  if (command.includes("/")) return existsSync(command);
  return (process.env.PATH ?? "").split(path.delimiter).some((dir) => dir !== "" && existsSync(path.join(dir, command)));
}
