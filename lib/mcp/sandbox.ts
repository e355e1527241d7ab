// A bubblewrap sandbox around one MCP child: the system read-only, writable only that user's
// workspace and the server's private folder, nothing else of ours (other workspaces, the data
// folder, logs, config, secrets) mounted at all, its own PID namespace and /proc, optionally no network.
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, readlinkSync, realpathSync } from "node:fs";
import path from "node:path";

/** What the operator asked for: `auto` sandboxes where bubblewrap works, `required` refuses to run a child without it. */
export type SandboxMode = "auto" | "required" | "off";

export const BWRAP_APT = "apt-get install -y bubblewrap";

/** Whether bubblewrap works here, found once at start. */
export type SandboxSupport = { ok: true; bwrap: string } | { ok: false; reason: string };

/** Top-level system folders (read-only); on a merged-/usr system most are symlinks into /usr. */
const SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/**
 * The part of /etc a program needs to run, resolve names and check TLS certificates; the rest
 * (shadow, ssh keys, sudoers, other services' credentials) is not there.
 */
const ETC_FILES = [
  "passwd",
  "group",
  "hosts",
  "host.conf",
  "resolv.conf",
  "nsswitch.conf",
  "gai.conf",
  "services",
  "protocols",
  "localtime",
  "timezone",
  "ld.so.cache",
  "ld.so.conf",
  "ld.so.conf.d",
  "alternatives",
  "ssl",
  "ca-certificates",
  "ca-certificates.conf",
  "pki",
  "mime.types",
  "os-release",
  "fonts",
  "gitconfig",
];

/** /tmp inside is memory-backed and small: servers get TMPDIR in their private folder for real work. */
const TMP_BYTES = 64 * 1024 * 1024;

export interface SandboxSpec {
  bwrap: string;
  command: string;
  args: string[];
  cwd: string;
  /** Mounted read-write at the same path: the user's workspace and the server's private folder. */
  writable: string[];
  /** Mounted read-only at the same path, besides the system and what the command needs (see exposedForCommand). */
  readOnly: string[];
  network: boolean;
  /**
   * Never mounted, nor any folder holding one: the server's own files, the workspace root and
   * the data root (other users are in there). A writable folder inside them is still mounted.
   */
  hidden: string[];
  /** prlimit options applied inside (see child-limits.ts): RLIMIT_NPROC then counts this sandbox alone. */
  prlimit?: { path: string; options: string[] };
}

/** `child` is `parent` or inside it. */
export function isWithin(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent.endsWith(path.sep) ? parent : parent + path.sep);
}

/** True when mounting `candidate` would show one of `hidden` (or sits inside one). */
export function wouldExpose(candidate: string, hidden: readonly string[]): boolean {
  return hidden.some((secret) => isWithin(candidate, secret) || isWithin(secret, candidate));
}

/**
 * What a command needs to be visible to run: the node installation outside /usr, the command and
 * its path arguments (scripts), and the node_modules folder they load packages from.
 */
export function exposedForCommand(command: string, args: readonly string[]): string[] {
  const found = new Set<string>();
  const add = (file: string) => {
    if (!path.isAbsolute(file) || !existsSync(file)) return;
    const real = realpathSync(file);
    for (const candidate of new Set([file, real])) {
      if (SYSTEM_DIRS.some((dir) => isWithin(candidate, dir))) continue;
      found.add(candidate);
      const modules = nodeModulesFor(candidate);
      if (modules) found.add(modules);
    }
  };
  add(process.execPath);
  const execPrefix = path.dirname(path.dirname(realpathSync(process.execPath)));
  if (!SYSTEM_DIRS.some((dir) => isWithin(execPrefix, dir))) found.add(execPrefix);
  add(command.includes("/") ? command : (whichOnPath(command) ?? ""));
  for (const arg of args) add(arg);
  return [...found];
}

/** The node_modules a script loads from: the outermost one in its path, else the nearest beside a parent. */
function nodeModulesFor(file: string): string | undefined {
  const parts = file.split(path.sep);
  const index = parts.indexOf("node_modules");
  if (index > 0) return parts.slice(0, index + 1).join(path.sep);
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, "node_modules");
    if (existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) return undefined;
  }
}

function whichOnPath(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir && existsSync(path.join(dir, command))) return path.join(dir, command);
  }
  return undefined;
}

/** The mounts of the system: a symlink (merged /usr) stays a symlink, a folder is bound read-only. */
function systemMounts(): string[] {
  const mounts: string[] = [];
  for (const dir of SYSTEM_DIRS) {
    let stat;
    try {
      stat = lstatSync(dir);
    } catch {
      continue;
    }
    if (stat.isSymbolicLink()) mounts.push("--symlink", readlinkSync(dir), dir);
    else mounts.push("--ro-bind", dir, dir);
  }
  for (const name of ETC_FILES) mounts.push("--ro-bind-try", path.join("/etc", name), path.join("/etc", name));
  return mounts;
}

/** bwrap's command line for the spec. Pure but for reading which system folders exist. */
export function sandboxedCommand(spec: SandboxSpec): { command: string; args: string[] } {
  const isRoot = process.getuid?.() === 0;
  const readOnly = [...new Set([...exposedForCommand(spec.command, spec.args), ...spec.readOnly])].filter(
    (dir) => !wouldExpose(dir, spec.hidden) && !spec.writable.some((writable) => isWithin(dir, writable)),
  );
  const binds = [...readOnly, ...spec.writable];
  const args = [
    // A user namespace of its own: no capability over anything outside, and (not as root)
    // RLIMIT_NPROC counts only the processes in here. No further namespaces inside.
    "--unshare-user",
    "--disable-userns",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    ...(spec.network ? [] : ["--unshare-net"]),
    "--die-with-parent",
    ...(isRoot ? ["--cap-drop", "ALL"] : []),
    "--hostname",
    "mcp-sandbox",
    ...systemMounts(),
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    // Mounted before the binds: their mount points are made in this tmpfs, never on a real disk.
    "--size",
    String(TMP_BYTES),
    "--tmpfs",
    "/tmp",
    ...readOnly.flatMap((dir) => ["--ro-bind", dir, dir]),
    ...spec.writable.flatMap((dir) => ["--bind", dir, dir]),
    // The root bwrap builds the sandbox in is a tmpfs: read-only once every mount point is made.
    // So is /tmp when mount points were made in it (a workspace under /tmp): else its empty
    // folders would be scratch space that looks like ours.
    ...(binds.some((dir) => isWithin(dir, "/tmp")) ? ["--remount-ro", "/tmp"] : []),
    "--remount-ro",
    "/",
    "--chdir",
    spec.cwd,
    "--",
    ...(spec.prlimit && spec.prlimit.options.length > 0 ? [spec.prlimit.path, ...spec.prlimit.options, "--"] : []),
    spec.command,
    ...spec.args,
  ];
  return { command: spec.bwrap, args };
}

/** Whether bubblewrap runs here with the options we use (user namespaces may be turned off). */
export function detectSandbox(bwrap: string): SandboxSupport {
  if (!existsSync(bwrap)) return { ok: false, reason: `bubblewrap is not installed (${bwrap} not found): ${BWRAP_APT}` };
  const { command, args } = sandboxedCommand({
    bwrap,
    command: process.execPath,
    args: ["-e", "process.exit(require('fs').readdirSync('/proc').filter((n) => /^\\d+$/.test(n)).length < 10 ? 0 : 3)"],
    cwd: "/",
    writable: [],
    readOnly: [],
    network: false,
    hidden: [],
  });
  const result = spawnSync(command, args, { encoding: "utf8", timeout: 10_000 });
  if (result.status === 0) return { ok: true, bwrap };
  const detail = (result.stderr || result.error?.message || `exit code ${result.status}`).trim().split("\n")[0];
  return {
    ok: false,
    reason: `bubblewrap cannot make a sandbox here (${detail}); user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone=1, or AppArmor's kernel.apparmor_restrict_unprivileged_userns=0)`,
  };
}
