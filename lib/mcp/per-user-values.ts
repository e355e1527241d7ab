// Per-user values in an MCP server's config ({user_id}, {workspace}, {user_data}; {{user_id}} for the
// text itself), and the private folders a per-user child keeps its state in.
import { chmodSync, mkdirSync } from "node:fs";
import path from "node:path";

export const PER_USER_VALUES = ["user_id", "workspace", "user_data"] as const;
export type PerUserValueName = (typeof PER_USER_VALUES)[number];
export type PerUserValues = Record<PerUserValueName, string>;

/** The parts of a server entry that may hold per-user values (structural, so config.ts can call in). */
export interface ExpandableEntry {
  args: string[];
  env: Record<string, string>;
  cwd?: string;
  url?: string;
  headers: Record<string, string>;
}

type Piece = { text: string } | { name: string };

/**
 * `{name}` is a placeholder and `{{name}}` the literal text `{name}`; every other brace is plain
 * text, so shell (`${HOME}`, `f() { …; }`) and JSON in args mean what they meant before.
 */
const PLACEHOLDER = /\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}|(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** A string as literal text and placeholders, or a message saying what is wrong. Pure. */
function parseTemplate(text: string): Piece[] | { error: string } {
  const pieces: Piece[] = [];
  let literal = "";
  let last = 0;
  for (const match of text.matchAll(PLACEHOLDER)) {
    literal += text.slice(last, match.index);
    last = match.index + match[0].length;
    const [, escaped, name] = match;
    if (escaped !== undefined) {
      literal += `{${escaped}}`;
      continue;
    }
    if (name === undefined) continue;
    if (!(PER_USER_VALUES as readonly string[]).includes(name)) {
      return {
        error: `unknown placeholder {${name}} (known: ${PER_USER_VALUES.map((known) => `{${known}}`).join(", ")}; write {{${name}}} for the text itself)`,
      };
    }
    if (literal) pieces.push({ text: literal });
    literal = "";
    pieces.push({ name });
  }
  literal += text.slice(last);
  if (literal) pieces.push({ text: literal });
  return pieces;
}

/** Every string of an entry that is expanded, with its key below `mcp.servers.<name>`. */
function templatedFields(entry: ExpandableEntry): [key: string, text: string][] {
  return [
    ...entry.args.map((arg, index): [string, string] => [`args[${index}]`, arg]),
    ...Object.entries(entry.env).map(([key, value]): [string, string] => [`env.${key}`, value]),
    ...(entry.cwd === undefined ? [] : [["cwd", entry.cwd] as [string, string]]),
    ...(entry.url === undefined ? [] : [["url", entry.url] as [string, string]]),
    ...Object.entries(entry.headers).map(([key, value]): [string, string] => [`headers.${key}`, value]),
  ];
}

/**
 * A config error for the entry, or undefined. `shared`: the server is one process for everyone,
 * so it has no user to take values from and any placeholder is an error. Pure.
 */
export function checkTemplates(name: string, entry: ExpandableEntry, shared: boolean): string | undefined {
  for (const [key, text] of templatedFields(entry)) {
    const parsed = parseTemplate(text);
    const where = `mcp.servers.${name}.${key}`;
    if ("error" in parsed) return `${where}: ${parsed.error}`;
    const used = parsed.find((piece): piece is { name: string } => "name" in piece);
    if (shared && used) {
      return `${where}: {${used.name}} is a per-user value, and mcp.servers.${name}.scope is shared (one process for every user): remove it, or drop "scope: shared"`;
    }
  }
  return undefined;
}

/** The text with its placeholders filled in and its escapes undone; a checked template never throws. */
export function expandTemplate(text: string, values: PerUserValues | undefined): string {
  const parsed = parseTemplate(text);
  if ("error" in parsed) throw new Error(parsed.error);
  return parsed
    .map((piece) => {
      if ("text" in piece) return piece.text;
      if (!values) throw new Error(`{${piece.name}} needs a user`);
      return values[piece.name as PerUserValueName];
    })
    .join("");
}

/** The entry's expandable parts, expanded; `values` undefined for a shared server (escapes only). */
export function expandEntry(entry: ExpandableEntry, values: PerUserValues | undefined): ExpandableEntry {
  const expand = (text: string) => expandTemplate(text, values);
  const mapValues = (record: Record<string, string>) =>
    Object.fromEntries(Object.entries(record).map(([key, value]) => [key, expand(value)]));
  return {
    args: entry.args.map(expand),
    env: mapValues(entry.env),
    ...(entry.cwd === undefined ? {} : { cwd: expand(entry.cwd) }),
    ...(entry.url === undefined ? {} : { url: expand(entry.url) }),
    headers: mapValues(entry.headers),
  };
}

/**
 * The literal text around a template's placeholders (empty for a string without any): what the
 * redactor can know in advance of a credential that becomes whole only per user.
 */
export function templateLiterals(text: string): string[] {
  const parsed = parseTemplate(text);
  if ("error" in parsed || !parsed.some((piece) => "name" in piece)) return [];
  return parsed.flatMap((piece) => ("text" in piece ? [piece.text] : []));
}

/** True when any expandable string of the entry names `value` (the filesystem server's workspace argument, say). */
export function usesValue(entry: ExpandableEntry, value: PerUserValueName): boolean {
  return templatedFields(entry).some(([, text]) => {
    const parsed = parseTemplate(text);
    return !("error" in parsed) && parsed.some((piece) => "name" in piece && piece.name === value);
  });
}

/** A server name as one folder name: config keys may hold any character. */
export function safeFolderName(name: string): string {
  const safe = name.replace(/[^A-Za-z0-9_.-]/g, (char) => `%${char.charCodeAt(0).toString(16).padStart(2, "0")}`);
  return safe === "." || safe === ".." || safe === "" ? safe.replace(/\./g, "%2e") || "%" : safe;
}

/**
 * A server's private folder: `<root>/users/<user_id>/servers/<server>` for a user's own child,
 * `<root>/shared/servers/<server>` for a shared one. User ids are already safe folder names.
 */
export function privateDirFor(root: string, server: string, userId: string | undefined): string {
  return userId === undefined
    ? path.join(root, "shared", "servers", safeFolderName(server))
    : path.join(root, "users", userId, "servers", safeFolderName(server));
}

/** HOME, TMPDIR and the XDG folders of a child, all inside its private folder. */
export function privateEnv(privateDir: string): Record<string, string> {
  const home = path.join(privateDir, "home");
  return {
    HOME: home,
    TMPDIR: path.join(privateDir, "tmp"),
    XDG_CONFIG_HOME: path.join(home, ".config"),
    XDG_DATA_HOME: path.join(home, ".local", "share"),
    XDG_CACHE_HOME: path.join(home, ".cache"),
    XDG_STATE_HOME: path.join(home, ".local", "state"),
  };
}

/** Creates the private folder and the ones privateEnv names, owner-only whatever the umask. */
export function ensurePrivateDirs(root: string, privateDir: string): void {
  const env = privateEnv(privateDir);
  for (const dir of [privateDir, env.TMPDIR, env.XDG_CONFIG_HOME, env.XDG_DATA_HOME, env.XDG_CACHE_HOME, env.XDG_STATE_HOME]) {
    if (dir) mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  // mkdir's mode is masked by the umask and leaves existing folders alone: set it on each level we
  // made below the root (the root itself may be an operator's folder, e.g. mcp.server_data_root).
  for (let dir = privateDir; dir.startsWith(root + path.sep); dir = path.dirname(dir)) chmodSync(dir, 0o700);
  chmodSync(env.HOME ?? privateDir, 0o700);
}
