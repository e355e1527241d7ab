// The one redactor: everything that leaves the server (frames, /sessions* answers, logs) passes
// through it. It knows every secret value (the API key, the tokens, the secrets file), every
// configured MCP server's URL credentials, query values, header values and secret-looking env
// values, finds them inside longer text, and (for what a client sees) turns the server's own
// absolute paths into placeholders.
import { homedir } from "node:os";
import path from "node:path";
import type { Config, McpServerConfig } from "../config.ts";
import { templateLiterals } from "../mcp/per-user-values.ts";

export const REDACTED = "[REDACTED]";

/** Shorter values are too likely to be ordinary words or numbers to be searched for. */
const MIN_SECRET_CHARS = 4;

/** A query value this long is treated as a credential whatever its name. */
const OPAQUE_CHARS = 16;

/** Header values that describe content rather than grant access: redacting them would only garble text. */
const PLAIN_HEADERS = new Set(["accept", "accept-encoding", "accept-language", "content-type", "user-agent", "mcp-protocol-version"]);

/** Names (of env variables and query parameters) that hold credentials. */
const SECRET_NAME = /key|token|secret|passw|pwd|^auth|credential|signature|^sig$/i;

export interface PathLabel {
  /** An absolute folder of the server. */
  path: string;
  /** What a client sees instead, e.g. `[workspace]`. */
  label: string;
}

/** Every spelling a value may take in text that left the server: as is, URL-encoded, JSON-escaped. */
function spellings(value: string): string[] {
  const escaped = JSON.stringify(value).slice(1, -1);
  return [value, encodeURIComponent(value), escaped];
}

/** The credentials an MCP server entry carries: URL user and password, query values, header and secret env values. */
export function mcpServerSecrets(servers: Record<string, McpServerConfig>): string[] {
  const found: string[] = [];
  for (const entry of Object.values(servers)) {
    if (entry.url) {
      let url: URL | undefined;
      try {
        url = new URL(entry.url);
      } catch {
        // Not a URL the SDK could reach either; its text is still matched as a whole below.
      }
      if (url) {
        // The user name is a name; the password is the secret.
        found.push(url.password, decodeSafely(url.password));
        // `?api_key=…` by its name; any other long opaque value too (`?format=json` is not a secret).
        for (const [name, value] of url.searchParams) if (SECRET_NAME.test(name) || value.length >= OPAQUE_CHARS) found.push(value);
        if (url.search.length > 1) found.push(url.search.slice(1));
      }
    }
    for (const [name, value] of Object.entries(entry.headers)) {
      if (PLAIN_HEADERS.has(name.toLowerCase())) continue;
      found.push(value);
      // `Bearer abc`: the credential alone may show up too.
      const credential = /^[A-Za-z-]{1,20}\s+(\S.*)$/.exec(value)?.[1];
      if (credential) found.push(credential);
    }
    for (const [name, value] of Object.entries(entry.env)) if (SECRET_NAME.test(name)) found.push(value);
  }
  // `Bearer {user_id}-…`: the parts written in the config are known now, the whole only per user.
  // Short parts ("Bearer ", "user-") would blank ordinary text everywhere: only the opaque-looking ones.
  return [...found, ...found.flatMap(templateLiterals).filter((part) => part.trim().length >= 8)];
}

function decodeSafely(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

// Credentials that were never configured (a redirect's URL, a header echoed by a server) are
// caught by their shape. Every pattern is linear: bounded repeats of one class, no nesting.
const USERINFO = /(\/\/[^\s/@:]{0,256}:)[^\s/@]{1,256}@/g;
const QUERY_PARAM = /([?&;])([\w.-]{1,64})=([^&#\s"'<>]{1,4096})/g;
const BEARER = /\b(Bearer|Basic)(\s+)([A-Za-z0-9._~+/=-]{8,4096})/g;

export class Redactor {
  /** Longest first, so a secret containing another is replaced whole. */
  readonly #secrets: readonly string[];
  readonly #paths: readonly PathLabel[];

  constructor(secrets: readonly string[], options: { paths?: readonly PathLabel[] } = {}) {
    const all = new Set(secrets.filter((secret) => secret.length >= MIN_SECRET_CHARS).flatMap(spellings));
    this.#secrets = [...all].filter((secret) => secret.length >= MIN_SECRET_CHARS).sort((a, b) => b.length - a.length);
    // A path of "/" (or a relative one) would turn every slash into a placeholder.
    this.#paths = (options.paths ?? [])
      .filter((entry) => path.isAbsolute(entry.path) && entry.path.length > 1)
      .map((entry) => ({ ...entry, path: entry.path.replace(/\/+$/, "") }))
      .sort((a, b) => b.path.length - a.path.length);
  }

  /**
   * Secrets, credentials and the server's folders, as built from the config: the redactor the
   * server uses for everything it sends and logs.
   */
  static fromConfig(config: Config, serverDir?: string): Redactor {
    const paths: PathLabel[] = [
      { path: path.resolve(config.configDir, config.workspace.root), label: "[workspace]" },
      { path: path.dirname(path.resolve(config.configDir, config.session.sqlite_path)), label: "[data]" },
      // Servers' private folders ({user_data}), when they are kept elsewhere.
      ...(config.mcp.server_data_root ? [{ path: path.resolve(config.configDir, config.mcp.server_data_root), label: "[data]" }] : []),
      { path: config.configDir, label: "[config]" },
      ...(serverDir ? [{ path: serverDir, label: "[server]" }] : []),
      { path: homedir(), label: "~" },
    ];
    return new Redactor([...config.secretValues, ...mcpServerSecrets(config.mcp.servers)], { paths });
  }

  /** For what a client sees (frames, HTTP answers): secrets, credentials and server paths. */
  redact(text: string): string {
    return this.#replacePaths(this.redactSecrets(text));
  }

  /** For the log, which is the operator's: secrets and credentials, but paths kept (they are what an operator needs). */
  redactSecrets(text: string): string {
    let out = text;
    for (const secret of this.#secrets) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
    if (!out.includes("//") && !out.includes("=") && !/Bearer|Basic/.test(out)) return out;
    return (
      out
        .replace(USERINFO, (_match, head: string) => `${head}${REDACTED}@`)
        .replace(QUERY_PARAM, (match, sep: string, name: string) => (SECRET_NAME.test(name) ? `${sep}${name}=${REDACTED}` : match))
        // "Basic credentials" is prose, not a credential: a lower-case word is left alone.
        .replace(BEARER, (match, scheme: string, space: string, value: string) =>
          /^[a-z]+$/.test(value) ? match : `${scheme}${space}${REDACTED}`,
        )
    );
  }

  /** Every string inside a JSON-like value, redacted for a client; errors become {name, message}. */
  redactValue<T>(value: T): T {
    return this.#deep(value, (text) => this.redact(text)) as T;
  }

  /** As redactValue, with the log's rule (paths kept). */
  redactSecretsIn<T>(value: T): T {
    return this.#deep(value, (text) => this.redactSecrets(text)) as T;
  }

  #deep(value: unknown, redact: (text: string) => string, depth = 0): unknown {
    if (typeof value === "string") return redact(value);
    if (depth > 32 || value === null || typeof value !== "object") return value;
    if (value instanceof Error) return { name: value.name, message: redact(value.message) };
    if (Array.isArray(value)) return value.map((item) => this.#deep(item, redact, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = this.#deep(item, redact, depth + 1);
    return out;
  }

  /** The literal strings this redactor replaces (secrets in every spelling, server folders), for a stream to watch for. */
  get literals(): { needles: readonly string[] } {
    return { needles: [...this.#secrets, ...this.#paths.map((entry) => entry.path)] };
  }

  #replacePaths(text: string): string {
    let out = text;
    for (const { path: dir, label } of this.#paths) {
      let at = out.indexOf(dir);
      while (at !== -1) {
        const next = out[at + dir.length];
        // Only the folder itself or something inside it: /srv/app must not eat /srv/application.
        if (next === undefined || !/[\w.-]/.test(next)) {
          out = out.slice(0, at) + label + out.slice(at + dir.length);
          at = out.indexOf(dir, at + label.length);
        } else {
          at = out.indexOf(dir, at + 1);
        }
      }
    }
    return out;
  }
}

/**
 * Redaction for text that leaves in pieces (a streamed answer's deltas): a secret or a path split
 * between two pieces would slip past a piece-by-piece redact. It holds back only what could be
 * the start of one (the text's end matches a value's beginning) until more text comes or the
 * stream ends, so ordinary text streams on at once.
 */
export class StreamRedactor {
  readonly #redactor: Redactor;
  readonly #needles: readonly string[];
  #pending = "";

  constructor(redactor: Redactor) {
    this.#redactor = redactor;
    this.#needles = redactor.literals.needles;
  }

  /** The part of the text so far that is safe to send, redacted ("" while it is all held back). */
  push(piece: string): string {
    this.#pending += piece;
    const text = this.#pending;
    let cut = text.length - this.#heldTail(text);
    // A whole value that straddles the cut (the held tail began inside it) waits as a whole.
    for (let moved = true; moved && cut > 0;) {
      moved = false;
      for (const needle of this.#needles) {
        for (
          let at = text.indexOf(needle, Math.max(0, cut - needle.length - 1));
          at !== -1 && at < cut;
          at = text.indexOf(needle, at + 1)
        ) {
          if (at + needle.length + 1 > cut) {
            cut = at;
            moved = true;
            break;
          }
        }
      }
    }
    if (cut <= 0) return "";
    this.#pending = text.slice(cut);
    return this.#redactor.redact(text.slice(0, cut));
  }

  /** Everything still held, redacted: the stream has ended. */
  flush(): string {
    const out = this.#pending;
    this.#pending = "";
    return out ? this.#redactor.redact(out) : "";
  }

  /**
   * How many characters at the end of `text` could begin a value (or be a whole path, whose next
   * character decides whether it is one): those wait for the next piece.
   */
  #heldTail(text: string): number {
    let held = 0;
    for (const needle of this.#needles) {
      const first = needle[0];
      for (let at = Math.max(0, text.length - needle.length); at < text.length - held; at++) {
        if (text[at] !== first) continue;
        const tail = text.length - at;
        if (needle.startsWith(text.slice(at))) {
          held = Math.max(held, tail);
          break;
        }
      }
    }
    return held;
  }
}
