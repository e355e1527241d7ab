// The command line, read once at the edge: the usage text, the options with their defaults, the
// socket URL they name, and the exit codes and errors that end the program.
import { parseArgs } from "node:util";
import { isValidUserId, USER_ID_RULE } from "../lib/protocol.ts";

// ---- exit codes and errors ---------------------------------------------------------------------

export const EXIT_OK = 0;
/** At least one message got an error (or a cancel) instead of an answer. */
export const EXIT_TURN_ERROR = 1;
export const EXIT_USAGE = 2;
/** The server could not be reached, refused the upgrade, or the connection dropped. */
export const EXIT_CONNECTION = 3;
export const EXIT_TIMEOUT = 4;

/** A failure that ends the program with a given exit code; its message goes to stderr. */
export class ClientError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.name = "ClientError";
    this.exitCode = exitCode;
  }
}

export class UsageError extends ClientError {
  constructor(message: string) {
    super(message, EXIT_USAGE);
    this.name = "UsageError";
  }
}

// ---- options -----------------------------------------------------------------------------------

export const PROGRAM = "mcp-agent-client";
const DEFAULT_URL = "ws://127.0.0.1:8000";
const DEFAULT_TIMEOUT_SECONDS = 300;
/** setTimeout's limit; a longer wait would fire at once. */
const MAX_TIMEOUT_SECONDS = Math.floor(2 ** 31 / 1000) - 1;
/** The reason --deny-all gives; the model reads "denied by the user: <this>". */
export const DENY_ALL_REASON = "denied by --deny-all";

export const USAGE = `Usage: ${PROGRAM} [options]        (or: npm run client -- [options])

Chat with the MCP agent server. With a terminal on stdin it is interactive; otherwise each
-m message, or each non-empty line of stdin, is sent in turn and each answer printed to stdout.

Options:
  --url URL           server address, ws://, wss://, http:// or https://; /ws/<user> is
                      appended (default: ${DEFAULT_URL})
  --user ID           user id (default: $USER, else test_user)
  -m, --message TEXT  send TEXT and print the answer; repeat to send several, one after another
  --upload FILE       upload FILE into the user's workspace (under its own name) before any
                      message is sent; repeat to upload several
  --attach FILE       upload FILE and attach it to the first message: the model reads it
                      (images, PDFs, text and code files); repeat to attach several
  --json              print every frame received as one JSON line instead of the answers
  --timeout SECONDS   how long to wait for each answer (default: ${DEFAULT_TIMEOUT_SECONDS})
  --approve-all       approve every tool call of this client's messages that needs a person's
                      approval (without it a terminal session asks y/n; a script does not answer)
  --deny-all          deny those calls instead, with the reason "${DENY_ALL_REASON}"
  --token TOKEN       send "Authorization: Bearer TOKEN" (default: $MCP_AGENT_AUTH_TOKEN,
                      else $MCP_AGENT_TOKEN)
  -h, --help          show this help

Tool calls that the server's require_approval setting covers wait for a person. Interactively
the client asks: y (yes), n (no; "n not now" gives a reason) or a (always: yes, and no more
questions for that tool this session). A script without --approve-all or --deny-all does not
answer: the call waits for another client of the user (the chat page, or this client in a
terminal), and if nobody answers the server denies it when its approval timeout runs out.

In a terminal, /files lists the workspace, /download PATH [DEST] saves a file from it,
/upload FILE puts one into it and /attach FILE uploads one and attaches it to your next message.

Exit codes: 0 every message answered, 1 an error came back (or an upload failed), 2 usage error,
            3 cannot connect or connection lost, 4 timed out waiting for an answer`;

export interface SocketTarget {
  /** What the client connects to (with ?stream=1). */
  url: string;
  /** What messages name: the socket URL without the stream flag or credentials. */
  display: string;
}

/** How tool calls that wait for approval are answered: asked (interactive) or not at all (scripts), or answered by a flag. */
export type ApprovalPolicy = "ask" | "approve-all" | "deny-all";

export interface ClientOptions {
  target: SocketTarget;
  user: string;
  timeoutMs: number;
  token: string | undefined;
  json: boolean;
  messages: string[];
  /** Local files uploaded to the workspace before the first message. */
  uploads: string[];
  /** Local files uploaded, then attached (by their workspace path) to the first message. */
  attach: string[];
  approvals: ApprovalPolicy;
  help: boolean;
}

const SCHEMES: Record<string, string> = { "ws:": "ws:", "wss:": "wss:", "http:": "ws:", "https:": "wss:" };

/** The socket URL for a user: the base's scheme made ws(s), `/ws/<user>` appended, `stream=1` set. */
export function socketTarget(base: string, user: string): SocketTarget {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new UsageError(`--url must be a ws://, wss://, http:// or https:// URL, got "${base}"`);
  }
  const scheme = SCHEMES[url.protocol];
  if (!scheme) throw new UsageError(`--url must start with ws://, wss://, http:// or https://, got "${base}"`);
  url.protocol = scheme;
  url.hash = "";
  // A base with a path (a reverse proxy under /agent) keeps it: /agent/ws/<user>.
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/ws/${encodeURIComponent(user)}`;
  const shown = new URL(url.href);
  shown.username = "";
  shown.password = "";
  url.searchParams.set("stream", "1");
  return { url: url.href, display: shown.href };
}

function parseTimeout(text: string): number {
  const seconds = Number(text);
  if (text.trim() === "" || !Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_TIMEOUT_SECONDS) {
    throw new UsageError(`--timeout must be a number of seconds above 0 and at most ${MAX_TIMEOUT_SECONDS}, got "${text}"`);
  }
  return Math.round(seconds * 1000);
}

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): ClientOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        url: { type: "string" },
        user: { type: "string" },
        message: { type: "string", short: "m", multiple: true },
        upload: { type: "string", multiple: true },
        attach: { type: "string", multiple: true },
        json: { type: "boolean" },
        timeout: { type: "string" },
        token: { type: "string" },
        "approve-all": { type: "boolean" },
        "deny-all": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const user = values.user ?? (env.USER || "test_user");
  if (!isValidUserId(user)) throw new UsageError(`invalid user id "${user}": ${USER_ID_RULE}`);
  const messages = values.message ?? [];
  // The server silently ignores blank messages, so waiting for their answer would never end.
  if (messages.some((message) => message.trim() === "")) throw new UsageError("--message must not be empty");
  if (values.token !== undefined && values.token === "") throw new UsageError("--token must not be empty");
  const uploads = values.upload ?? [];
  if (uploads.some((file) => file === "")) throw new UsageError("--upload needs a file name");
  const attach = values.attach ?? [];
  if (attach.some((file) => file === "")) throw new UsageError("--attach needs a file name");
  const approveAll = values["approve-all"] ?? false;
  const denyAll = values["deny-all"] ?? false;
  if (approveAll && denyAll) throw new UsageError("--approve-all and --deny-all cannot be used together");
  return {
    target: socketTarget(values.url ?? DEFAULT_URL, user),
    user,
    timeoutMs: parseTimeout(values.timeout ?? String(DEFAULT_TIMEOUT_SECONDS)),
    // The server's own variable first (the same token on both ends), then the client's older name.
    token: values.token ?? (env.MCP_AGENT_AUTH_TOKEN || env.MCP_AGENT_TOKEN || undefined),
    json: values.json ?? false,
    messages,
    uploads,
    attach,
    approvals: approveAll ? "approve-all" : denyAll ? "deny-all" : "ask",
    help: values.help ?? false,
  };
}
