// mcp_agent.config.yaml (+ mcp_agent.secrets.yaml merged over it), parsed once at start.
// The schema is the documentation of every key and its default; unknown keys are tolerated so a
// config written for the Python mcp-agent works unchanged.
import { readFileSync, existsSync } from "node:fs";
import path from "node:path";
import { LineCounter, parseDocument, isNode, type Document } from "yaml";
import { z } from "zod";
import { checkTemplates } from "./mcp/per-user-values.ts";

const seconds = z.number().positive();

/** The smallest `agent.max_context_tokens` (and the smallest window a model's refusal is believed to name). */
export const MIN_CONTEXT_TOKENS = 1024;

/** Limits of one MCP child (lib/mcp/child-limits.ts); 0 turns one off. */
const childLimit = z.number().int().min(0);
/** mcp-agent's `mcp.servers.<name>.auth`: a static API key, or OAuth (docs/mcp.md#authorization). */
const McpServerAuthSchema = z.object({
  /** Sent as `Authorization: Bearer <api_key>` to a remote server. */
  api_key: z.string().optional(),
  oauth: z
    .object({
      /** The server is reached with the user's own OAuth token (each user signs in once). */
      enabled: z.boolean().default(true),
      /** Scopes asked for when the server's challenge names none. */
      scopes: z.array(z.string()).default([]),
      /** The RFC 8707 resource; default: the server's protected-resource metadata, else its URL. */
      resource: z.string().optional(),
      /** Where to authorize when the server publishes no protected-resource metadata. */
      authorization_server: z.string().optional(),
      /** A pre-registered client (else the client ID metadata document, else dynamic registration). */
      client_id: z.string().optional(),
      client_secret: z.string().optional(),
      /** A PEM private key: the client authenticates with a signed JWT (private_key_jwt) instead of a secret. */
      private_key: z.string().optional(),
      /** The JWT's algorithm with private_key. */
      signing_algorithm: z.string().default("RS256"),
      /** The operator's tokens, used for every user until they expire (mcp-agent's pre_authorize). */
      access_token: z.string().optional(),
      refresh_token: z.string().optional(),
      /** This server's client ID metadata document URL; default: oauth.client_metadata_url. */
      client_metadata_url: z.string().optional(),
      /**
       * `client_credentials`: the operator's client authorizes once for every user (needs client_id and client_secret);
       * `cross_app_access`: the user's enterprise IdP ID token is exchanged for an ID-JAG, then for a token (needs cross_app_access).
       */
      grant: z.enum(["authorization_code", "client_credentials", "cross_app_access"]).default("authorization_code"),
      /** Enterprise-managed authorization (SEP-990): where and with what the ID-JAG is obtained. */
      cross_app_access: z
        .object({
          /** The IdP's token endpoint (RFC 8693 token exchange); else found from idp_issuer's metadata. */
          idp_token_endpoint: z.string().optional(),
          idp_issuer: z.string().optional(),
          /** This server's client at the IdP, and its secret (client_secret_basic) when it has one. */
          idp_client_id: z.string(),
          idp_client_secret: z.string().optional(),
          /** The ID token the IdP issued for the user (the subject token). */
          id_token: z.string(),
        })
        .optional(),
    })
    .superRefine((oauth, context) => {
      if (oauth.grant === "cross_app_access" && !oauth.cross_app_access)
        context.addIssue({
          code: "custom",
          path: ["cross_app_access"],
          message: "grant cross_app_access needs auth.oauth.cross_app_access",
        });
      if (oauth.cross_app_access && !oauth.cross_app_access.idp_token_endpoint && !oauth.cross_app_access.idp_issuer)
        context.addIssue({
          code: "custom",
          path: ["cross_app_access", "idp_token_endpoint"],
          message: "auth.oauth.cross_app_access needs idp_token_endpoint or idp_issuer",
        });
    })
    .optional(),
});

const McpServerSchema = z.object({
  transport: z.enum(["stdio", "sse", "streamable_http", "websocket"]).default("stdio"),
  description: z.string().optional(),
  command: z.string().optional(),
  args: z.array(z.string()).default([]),
  env: z.record(z.string(), z.string()).default({}),
  cwd: z.string().optional(),
  url: z.string().optional(),
  headers: z.record(z.string(), z.string()).default({}),
  auth: McpServerAuthSchema.optional(),
  read_timeout_seconds: seconds.default(60),
  /** A call that keeps reporting progress has its read timeout restarted, up to this much in all. */
  max_call_seconds: seconds.default(3600),
  /** Whether the server may ask for a model call (`sampling/createMessage`): deny, approve (a person allows each), allow. */
  sampling: z.enum(["deny", "approve", "allow"]).default("approve"),
  /** Only these tools of the server are offered to the model. */
  allowed_tools: z.array(z.string()).optional(),
  /** Tool calls that wait for a person's approval: never (default), always, or these tool names. */
  require_approval: z.union([z.enum(["never", "always"]), z.array(z.string())]).default("never"),
  /** `builtin: fetch` / `builtin: filesystem` select the in-process server instead of a child process. */
  builtin: z.enum(["fetch", "filesystem"]).optional(),
  // Options of the built-in fetch tool.
  allow_hosts: z.array(z.string()).default([]),
  user_agent: z.string().default("ModelContextProtocol/1.0 (Autonomous; +https://github.com/modelcontextprotocol/servers)"),
  ignore_robots_txt: z.boolean().default(false),
  fetch_timeout_seconds: seconds.default(30),
  max_fetch_bytes: z
    .number()
    .int()
    .positive()
    .default(5 * 1024 * 1024),
  // Options of the built-in filesystem (lib/filesystem): what one user's call may cost the others.
  /** A text read longer than this is cut with a note; larger files are not edited. */
  max_read_bytes: z
    .number()
    .int()
    .positive()
    .default(1024 * 1024),
  /** read_media_file refuses larger files (its result is the whole file, base64). */
  max_media_bytes: z
    .number()
    .int()
    .positive()
    .default(10 * 1024 * 1024),
  /** Directory entries one listing, tree or search visits before it stops with a note. */
  max_entries: z.number().int().positive().default(10_000),
  /** A tree or search still walking after this long stops with a note. */
  walk_timeout_seconds: seconds.default(10),
  /** Markup longer than this (characters) is cut before conversion to Markdown (about 2 s per million). */
  max_convert_chars: z.number().int().positive().default(1_000_000),
  /** Worker threads converting HTML to Markdown, shared fairly by all users; 0: one per core but one. */
  convert_workers: z.number().int().min(0).max(64).default(0),
  /** One conversion's own time budget on its worker (not counting its wait in the queue); past it the page is given as raw text. */
  convert_budget_seconds: seconds.default(5),
  /** Markup nested deeper than this many elements is given as raw text instead of converted. */
  max_convert_depth: z.number().int().positive().default(256),
  // Who the server is for, and what its child may reach (lib/mcp/per-user-values.ts, sandbox.ts).
  /** `user`: a process (or connection) of each user's own, with per-user values; `shared`: one for everyone. */
  scope: z.enum(["user", "shared"]).default("user"),
  /** This child's sandbox: unset follows mcp.sandbox; `false`/`off` runs it unsandboxed, `true`/`required` refuses to run it without. */
  sandbox: z.union([z.boolean(), z.enum(["auto", "required", "off"])]).optional(),
  /** Inside the sandbox: whether the child has the network (false: only a loopback of its own). */
  network: z.boolean().default(true),
  /** More folders or files the sandboxed child may read (a Python venv, a browser, data it serves). */
  read_only_paths: z.array(z.string()).default([]),
  /** Per-child limits over mcp.child_limits. */
  limits: z
    .object({
      memory_mb: childLimit.optional(),
      cpu_seconds: childLimit.optional(),
      open_files: childLimit.optional(),
      processes: childLimit.optional(),
      nice: z.number().int().min(0).max(19).optional(),
    })
    .prefault({}),
});

const LoggerSchema = z.object({
  // As in mcp-agent: `transports` when it lists any, else the older single `type` (default
  // console). "http" is accepted so mcp-agent configs load, and writes nothing here.
  type: z.enum(["console", "file", "http", "none"]).optional(),
  transports: z.array(z.enum(["console", "file", "http", "none"])).default([]),
  level: z.enum(["debug", "info", "warning", "warn", "error"]).default("info"),
  path: z.string().optional(),
  path_settings: z
    .object({
      path_pattern: z.string().default("logs/mcp-agent-{unique_id}.jsonl"),
      unique_id: z.enum(["timestamp", "session_id"]).default("timestamp"),
      timestamp_format: z.string().default("%Y%m%d_%H%M%S"),
    })
    .prefault({}),
});

const ConfigSchema = z.object({
  $schema: z.string().optional(),
  execution_engine: z.string().optional(),
  logger: LoggerSchema.prefault({}),
  mcp: z
    .object({
      servers: z.record(z.string(), McpServerSchema).default({}),
      /** Every stdio child in bubblewrap: `auto` where it works (else a warning), `required` (no child runs without), `off`. */
      sandbox: z.enum(["auto", "required", "off"]).default("auto"),
      bwrap_path: z.string().default("/usr/bin/bwrap"),
      /** Folders or files every sandboxed child may read, besides the system and its own command. */
      read_only_paths: z.array(z.string()).default([]),
      /** Where servers' private folders are ({user_data}); unset: the folder of session.sqlite_path. */
      server_data_root: z.string().optional(),
      /** Limits of each stdio child (and each of its processes); 0 turns one off. */
      child_limits: z
        .object({
          memory_mb: childLimit.default(1024),
          cpu_seconds: childLimit.default(3600),
          open_files: childLimit.default(1024),
          processes: childLimit.default(256),
          /** Scheduling niceness of each child (0-19): a busy child yields the CPU to our server and to quieter children. */
          nice: z.number().int().min(0).max(19).default(10),
        })
        .prefault({}),
      /** Remote MCP servers users add for themselves (GET/POST/DELETE /servers/<user_id>). */
      user_servers: z
        .object({
          enabled: z.boolean().default(false),
          /** Hosts a user's server may be on although the address guard refuses them (loopback, private), as the fetch tool's allow_hosts. */
          allow_hosts: z.array(z.string()).default([]),
        })
        .prefault({}),
    })
    .prefault({}),
  /** OAuth for remote MCP servers (mcp-agent's top-level `oauth` section, where it applies). */
  oauth: z
    .object({
      /** The client ID metadata document URL; default <server.public_url>/oauth/client-metadata.json when that is https. */
      client_metadata_url: z.string().optional(),
      /** Where the authorization server sends the browser back; default server.public_url, else http://localhost:<port>. */
      callback_base_url: z.string().optional(),
      /** An authorization URL (its state) expires after this long. */
      flow_timeout_seconds: seconds.default(600),
      /** Key of the tokens at rest (secrets file; any string, hashed to 256 bits); unset: key_file. */
      encryption_key: z.string().optional(),
      /** Made owner-only (0600) with a random key when absent. Relative to the config file's folder. */
      key_file: z.string().default("data/oauth.key"),
      /** The client_name of our registrations and metadata document. */
      client_name: z.string().default("mcp-agent-ws"),
    })
    .prefault({}),
  openai: z
    .object({
      /** `azure`: Azure OpenAI through the SDK's Azure client (also chosen by an `azure:` section); unset: OpenAI or any compatible base_url. */
      provider: z.enum(["openai", "azure"]).optional(),
      api_key: z.string().optional(),
      base_url: z.string().optional(),
      // With provider azure, the keys of mcp-agent's azure: section may be written here instead.
      endpoint: z.string().optional(),
      api_version: z.string().optional(),
      azure_deployment: z.string().optional(),
      default_model: z.string().default("gpt-4o-mini"),
      /** Bounds a whole model call, a streamed answer included. */
      request_timeout_seconds: seconds.default(60),
      /** A streamed answer that sends nothing for this long (keep-alive comments do not count) fails. */
      stream_idle_timeout_seconds: seconds.default(30),
      max_retries: z.number().int().min(0).max(10).default(2),
      // mcp-agent's keys, passed through as it does: max_tokens (as max_completion_tokens to
      // reasoning models), reasoning_effort (reasoning models only: o1, o3, o4, gpt-5), user, default_headers.
      /** Longest reply, in tokens; also what the context fitting keeps free for the reply. */
      max_tokens: z.number().int().positive().optional(),
      reasoning_effort: z.enum(["none", "minimal", "low", "medium", "high"]).default("medium"),
      /** Sent as `user` with every request (end-user id for the provider's abuse monitoring). */
      user: z.string().optional(),
      /** Whether the model takes images (attachments); unset: yes, unless its name is a known text-only model. */
      vision: z.boolean().optional(),
      /** Read the endpoint's model list (GET /models) once at start and log a warning when it does not list default_model. */
      check_model: z.boolean().default(true),
      /** Send the model's earlier reasoning back with the history (`reasoning_content`), for servers that require it. */
      send_reasoning: z.boolean().default(false),
      /** Extra HTTP headers on every model request (e.g. an API gateway's). */
      default_headers: z.record(z.string(), z.string()).default({}),
    })
    .prefault({}),
  /** mcp-agent's Azure OpenAI section, as written there (docs/models.md). */
  azure: z
    .object({
      api_key: z.string().optional(),
      /** https://<resource>.openai.azure.com (a /openai/deployments/<name> tail names the deployment). */
      endpoint: z.string().optional(),
      api_version: z.string().optional(),
      azure_deployment: z.string().optional(),
      default_model: z.string().optional(),
      /** mcp-agent's Entra ID scopes: accepted so its configs load; only api-key authentication is done here. */
      credential_scopes: z.array(z.string()).optional(),
    })
    .optional(),
  agent: z
    .object({
      instruction: z
        .string()
        .default(
          "You are an AI assistant with access to a filesystem (the user's own workspace folder) and to web fetching. " +
            "Use the tools when they help to answer, and say what you did.",
        ),
      max_iterations: z.number().int().min(1).max(100).default(10),
      /** A tool call waiting for approval this long is denied. */
      approval_timeout_seconds: seconds.default(120),
      /** The model's context window in tokens; unset: the model's known window (lib/model/context.ts), else 32768. */
      max_context_tokens: z.number().int().min(MIN_CONTEXT_TOKENS).optional(),
      /** Tokens kept free for the reply when openai.max_tokens is not set. */
      reply_reserve_tokens: z.number().int().positive().default(4096),
      /** A turn still running after this long is stopped with an error (model calls, tools and approvals included). */
      max_turn_seconds: seconds.default(600),
    })
    .prefault({}),
  session: z
    .object({
      idle_timeout_seconds: seconds.default(2 * 60 * 60),
      sweep_interval_seconds: seconds.default(60 * 60),
      /** History cap in messages, system prompt excluded. */
      max_history_messages: z.number().int().min(2).default(200),
      /** `sqlite` keeps conversations across restarts; `memory` forgets them, as the original did. */
      store: z.enum(["sqlite", "memory", "redis"]).default("sqlite"),
      sqlite_path: z.string().default("data/sessions.db"),
      /** Stored conversations idle longer than this are deleted. */
      retention_days: z.number().positive().default(30),
      /** A session whose tools were not used for this long stops its MCP processes until its next turn. */
      mcp_idle_seconds: seconds.default(300),
      /** A session that never ran a turn and has no socket is ended after this long (its stored record too). */
      idle_new_session_seconds: seconds.default(300),
    })
    .prefault({}),
  server: z
    .object({
      /** Address to listen on; --host and $HOST win over it. */
      host: z.string().default("127.0.0.1"),
      /** Port to listen on (0 picks a free one); --port and $PORT win over it. */
      port: z.number().int().min(0).max(65535).default(8000),
      /** Origins (scheme://host:port) allowed to open a socket besides the server's own. */
      allowed_origins: z.array(z.string()).default([]),
      /** Host header values answered while bound to loopback, besides localhost/127.0.0.1/[::1]. */
      allowed_hosts: z.array(z.string()).default([]),
      /** Proxies (addresses or CIDR ranges) whose X-Forwarded-For names the client; from any other peer it is ignored. */
      trusted_proxies: z.array(z.string()).default([]),
      /** The address users reach this server at (https://agent.example.com): OAuth redirects and the client ID metadata document. */
      public_url: z.string().optional(),
      /** When set (or MCP_AGENT_AUTH_TOKEN), /ws/* and /sessions* require it. */
      auth_token: z.string().optional(),
      /** Per-user identities (docs/security.md): `token` is the shared auth_token above; `jwt` and `users` tie a token to one user id. */
      auth: z
        .object({
          mode: z.enum(["token", "jwt", "users"]).default("token"),
          /** Sees every session and may open any user id, in every mode (or MCP_AGENT_ADMIN_TOKEN). */
          admin_token: z.string().optional(),
          /** mode users: YAML or JSON mapping user ids to token hashes (`npm run hash-token`). Relative to the config file's folder. */
          users_file: z.string().optional(),
          /** Failed token checks per minute, per remote address and per user id (then 429 with Retry-After)... */
          failed_checks_per_minute: z.number().positive().default(30),
          /** ...and at once after a quiet spell. */
          failed_check_burst: z.number().int().positive().default(10),
          /** mode jwt: a token must carry `exp`, at most this far after its `iat` (or after now, without `iat`). */
          max_token_age_seconds: seconds.default(86_400),
          jwt: z
            .object({
              /** HS256/384/512 shared secret. */
              secret: z.string().optional(),
              /** RS*, PS*, ES* or EdDSA: the public key, PEM. */
              public_key: z.string().optional(),
              /** Or the issuer's key set, fetched and cached. */
              jwks_url: z.string().optional(),
              issuer: z.string().optional(),
              audience: z.string().optional(),
              clock_tolerance_seconds: z.number().min(0).default(30),
            })
            .prefault({}),
        })
        .prefault({}),
      ping_interval_seconds: seconds.default(30),
      headers_timeout_seconds: seconds.default(10),
      request_timeout_seconds: seconds.default(30),
    })
    .prefault({}),
  // Every cap on what a user or a model controls, in one place.
  limits: z
    .object({
      /** Largest WebSocket frame; bigger ones close the socket with 1009. */
      max_payload_bytes: z
        .number()
        .int()
        .positive()
        .default(1024 * 1024),
      /** Longest chat message, in characters. */
      max_message_chars: z.number().int().positive().default(32_000),
      /** Sessions that hold resources (ran a turn, or run MCP servers); sessions that never chat are not counted. */
      max_sessions: z.number().int().positive().default(2000),
      /** New sessions (user ids with no stored conversation) per remote address, on average... */
      new_sessions_per_minute: z.number().positive().default(120),
      /** ...and at once after a quiet spell. */
      new_session_burst: z.number().int().positive().default(60),
      /** New sessions per address prefix (/24 IPv4, /64 IPv6), on average... */
      new_sessions_per_prefix_per_minute: z.number().positive().default(600),
      /** ...and at once after a quiet spell. */
      new_session_prefix_burst: z.number().int().positive().default(240),
      max_sockets_per_user: z.number().int().positive().default(8),
      /** Open sockets per remote address (all user ids together). */
      max_sockets_per_address: z.number().int().positive().default(256),
      /** Frames one socket may have refused (too long, malformed) before it is closed with 1008. */
      max_refused_frames_per_socket: z.number().int().positive().default(20),
      /** A reconnecting socket gets at most this many bytes of the running turn's frames (the newest), then a note to read the history. */
      max_replay_bytes: z
        .number()
        .int()
        .positive()
        .default(256 * 1024),
      max_queued_turns: z.number().int().positive().default(16),
      messages_per_minute: z.number().positive().default(30),
      message_burst: z.number().int().positive().default(10),
      /** `history` requests per user (a bucket apart from messages), and how many may come at once. */
      history_requests_per_minute: z.number().positive().default(60),
      history_burst: z.number().int().positive().default(10),
      /** Items in a `history` frame when the request names no `limit`, and the most it may name. */
      history_page_items: z.number().int().positive().default(200),
      history_max_page_items: z.number().int().positive().default(1000),
      /** A `history` frame holds fewer items when theirs would pass this many characters of JSON (at least one item). */
      history_page_chars: z.number().int().positive().default(2_000_000),
      /** Tool results longer than this (characters) are cut with a note. */
      max_tool_result_chars: z.number().int().positive().default(100_000),
      /** A model answer's text plus its tool calls (characters): text past it is cut with a note, tool calls past it fail the call. */
      max_answer_chars: z.number().int().positive().default(1_000_000),
      /** A model answer's response body read whole (JSON), or one line of a streamed one, past this many bytes fails the call. */
      max_answer_bytes: z
        .number()
        .int()
        .positive()
        .default(8 * 1024 * 1024),
      /** Tool calls one model answer may make; more fail the call. */
      max_parallel_tool_calls: z.number().int().positive().default(32),
      /** What the model may write in one turn, every answer's text and tool calls together (characters); past it the turn stops. */
      max_turn_output_chars: z.number().int().positive().default(4_000_000),
      /** A model error text longer than this (characters) is cut with a note. */
      max_error_chars: z.number().int().positive().default(2_000),
      /** A tool result's image larger than this (decoded bytes) is not passed to the model. */
      max_tool_image_bytes: z
        .number()
        .int()
        .positive()
        .default(2 * 1024 * 1024),
      /** `maxTokens` of an MCP server's sampling request is capped at this. */
      max_sampling_tokens: z.number().int().positive().default(4096),
      /** Restarts of a crashed MCP server before it is left failed. */
      mcp_max_restarts: z.number().int().min(0).default(3),
      /** One message from an MCP server (a stdio line, an HTTP body, an SSE line), in bytes; past it the call it answers fails. */
      mcp_max_message_bytes: z
        .number()
        .int()
        .positive()
        .default(8 * 1024 * 1024),
      /** Notifications (logs, progress, list changes) one MCP server connection may send, on average per second... */
      mcp_notifications_per_second: z.number().positive().default(20),
      /** ...and at once; past that they are dropped and counted. */
      mcp_notification_burst: z.number().int().positive().default(200),
      /** An MCP server's log data is cut to this many characters (of JSON) in our log. */
      mcp_max_log_chars: z.number().int().positive().default(2000),
      /** An elicitation form (every field, title, option and default, as JSON), in characters; a bigger one fails the request. */
      mcp_max_elicitation_chars: z.number().int().positive().default(64_000),
      /** Sessions that start their MCP servers on connect; beyond this, servers start on the first turn. */
      max_warm_sessions: z.number().int().min(0).default(50),
      /** Past this many unsent bytes a socket's deltas are coalesced... */
      send_buffer_soft_bytes: z
        .number()
        .int()
        .positive()
        .default(256 * 1024),
      /** ...and past this many it is closed (the turn still completes into the history). */
      send_buffer_hard_bytes: z
        .number()
        .int()
        .positive()
        .default(4 * 1024 * 1024),
      /** Largest file one upload (PUT /files/<user_id>/<path>) may write; larger ones get 413. */
      max_upload_bytes: z
        .number()
        .int()
        .positive()
        .default(10 * 1024 * 1024),
      /** Total size of the regular files in one user's workspace folder; uploads past it get 413, the built-in filesystem's writes fail. */
      workspace_bytes: z
        .number()
        .int()
        .positive()
        .default(100 * 1024 * 1024),
      /** Uploads one user may have running at once; past it 429. */
      max_uploads_per_user: z.number().int().positive().default(4),
      /** Uploads one remote address may have running at once (all user ids together); past it 429. */
      max_uploads_per_address: z.number().int().positive().default(16),
      /** MCP servers one user may add (mcp.user_servers). */
      max_user_servers: z.number().int().min(0).default(10),
      /** Files one chat message may attach. */
      max_attachments: z.number().int().min(0).default(10),
      /** Largest attached file (as stored in the workspace). */
      max_attachment_bytes: z
        .number()
        .int()
        .positive()
        .default(20 * 1024 * 1024),
      /** Largest file sent inline (base64 in the chat frame); larger ones are uploaded first and sent by path. */
      max_inline_attachment_bytes: z
        .number()
        .int()
        .positive()
        .default(512 * 1024),
      /** Text one PDF or text attachment may send to the model, in tokens; past it the text is cut with a note. */
      max_attachment_tokens: z.number().int().positive().default(30_000),
      /** Model tokens (prompt + completion) one user may use per UTC day; unset: no quota. */
      tokens_per_day: z.number().int().positive().optional(),
    })
    .prefault({}),
  /** `session.store: redis`: several instances share sessions through this Redis. */
  redis: z
    .object({
      /** redis://[user:password@]host:port, or rediss://… for TLS; credentials belong in the secrets file. */
      url: z.string().default("redis://127.0.0.1:6379"),
      /** Signs every message between instances (HMAC-SHA256): unsigned or forged ones are dropped. Required with session.store: redis. */
      cluster_secret: z.string().min(16).optional(),
      /** TLS to Redis (a rediss:// URL turns it on): PEM files relative to the config folder. */
      tls: z
        .object({
          ca_file: z.string().optional(),
          cert_file: z.string().optional(),
          key_file: z.string().optional(),
          reject_unauthorized: z.boolean().default(true),
        })
        .optional(),
      /** A turn's lease on its user; renewed while it runs, so only a dead instance's lease expires. */
      lease_seconds: seconds.default(10),
    })
    .prefault({}),
  observability: z
    .object({
      /** Traces carry message text, tool arguments and results (off: only names, counts and outcomes). */
      capture_content: z.boolean().default(false),
    })
    .prefault({}),
  workspace: z
    .object({
      /** Each user's filesystem server is rooted in <root>/<user_id>. Relative to the config file's folder. */
      root: z.string().default("workspace"),
    })
    .prefault({}),
});

type ParsedConfig = z.infer<typeof ConfigSchema>;
export type McpServerConfig = z.infer<typeof McpServerSchema>;
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Every default, as the schema gives it to an empty config (for help texts and tests). */
export function configDefaults(): ParsedConfig {
  return ConfigSchema.parse({});
}

/** The options of a built-in fetch entry, as the schema defaults them. */
export function mcpServerDefaults(): McpServerConfig {
  return McpServerSchema.parse({});
}

type AzureSettings = NonNullable<ParsedConfig["azure"]>;

export interface Config extends Omit<ParsedConfig, "azure"> {
  /** Resolved (config, then AZURE_OPENAI_* variables) when the provider is Azure, else undefined. */
  azure: AzureSettings | undefined;
  /** Folder of the config file: relative paths in the config are relative to it. */
  configDir: string;
  logLevel: LogLevel;
  /** Every value that must never reach a log, a frame or an HTTP answer: the API key, the token, everything in the secrets file. */
  secretValues: string[];
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

export const CONFIG_FILE = "mcp_agent.config.yaml";
export const SECRETS_FILE = "mcp_agent.secrets.yaml";
/** The secrets file name mcp-agent also reads; used when SECRETS_FILE is absent. */
export const SECRETS_FILE_ALT = "mcp-agent.secrets.yaml";

interface YamlSource {
  file: string;
  text: string;
}

function parseYaml({ file, text }: YamlSource): { data: unknown; doc: Document; lines: LineCounter } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const first = doc.errors[0];
  if (first) {
    const at = lines.linePos(first.pos[0]);
    throw new ConfigError(`${file}:${at.line}:${at.col}: invalid YAML: ${first.message.split("\n")[0]}`);
  }
  return { data: doc.toJS() ?? {}, doc, lines };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * As mcp-agent reads YAML, null means "not set": `mcp:` with every server commented out, an empty
 * `openai:` or `env:` fall back to their defaults instead of failing validation.
 */
function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (!isPlainObject(value)) return value;
  const kept: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) if (child !== null) kept[key] = withoutNulls(child);
  return kept;
}

function deepMerge(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over === undefined || over === null ? base : over;
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) merged[key] = deepMerge(base[key], value);
  return merged;
}

function stringLeaves(value: unknown): string[] {
  if (typeof value === "string") return [value];
  if (Array.isArray(value)) return value.flatMap(stringLeaves);
  if (isPlainObject(value)) return Object.values(value).flatMap(stringLeaves);
  return [];
}

/** Where in which file a key path is written, for error messages. */
function locate(sources: { file: string; doc: Document; lines: LineCounter }[], keyPath: PropertyKey[]): string {
  for (let depth = keyPath.length; depth >= 0; depth--) {
    for (const source of [...sources].reverse()) {
      const node = depth === 0 ? source.doc.contents : source.doc.getIn(keyPath.slice(0, depth), true);
      if (isNode(node) && node.range) {
        return `${source.file}:${source.lines.linePos(node.range[0]).line}`;
      }
    }
  }
  return sources[0]?.file ?? CONFIG_FILE;
}

/**
 * Pure: config text (and optional secrets text) plus environment to a validated Config.
 * Throws ConfigError naming the file, line, key path and what was expected.
 */
export function parseConfig(
  config: YamlSource,
  secrets: YamlSource | undefined,
  env: Record<string, string | undefined>,
  configDir: string,
): Config {
  const sources = [config, ...(secrets ? [secrets] : [])].map((source) => ({ file: source.file, ...parseYaml(source) }));
  for (const source of sources) {
    if (!isPlainObject(source.data)) {
      throw new ConfigError(`${source.file}: expected a mapping of keys at the top level`);
    }
  }
  // A value in the files wins; the environment fills what they leave out (or leave empty).
  const fromEnv = {
    openai: { api_key: env.OPENAI_API_KEY, base_url: env.OPENAI_BASE_URL, default_model: env.OPENAI_DEFAULT_MODEL },
    server: { auth_token: env.MCP_AGENT_AUTH_TOKEN, auth: { admin_token: env.MCP_AGENT_ADMIN_TOKEN } },
  };
  const merged = [fromEnv, ...sources.map((source) => withoutNulls(source.data))].reduce<unknown>((acc, data) => deepMerge(acc, data), {});
  const result = ConfigSchema.safeParse(merged);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const keyPath = issue.path.map(String).join(".") || "(top level)";
      return `${locate(sources, issue.path)}: ${keyPath}: ${issue.message}`;
    });
    throw new ConfigError(problems.join("\n"));
  }
  const parsed = result.data;
  for (const [name, server] of Object.entries(parsed.mcp.servers)) {
    const where = `mcp.servers.${name}`;
    if (server.builtin) continue;
    if (server.transport === "stdio" && !server.command) {
      throw new ConfigError(`${locate(sources, ["mcp", "servers", name])}: ${where}: a stdio server needs "command"`);
    }
    if ((server.transport === "sse" || server.transport === "streamable_http") && !server.url) {
      throw new ConfigError(`${locate(sources, ["mcp", "servers", name])}: ${where}: transport ${server.transport} needs "url"`);
    }
    const templateError = checkTemplates(name, server, server.scope === "shared");
    if (templateError) throw new ConfigError(`${locate(sources, ["mcp", "servers", name])}: ${templateError}`);
  }
  if (parsed.session.store === "redis" && !parsed.redis.cluster_secret) {
    throw new ConfigError(
      `${locate(sources, ["session", "store"])}: session.store: redis needs redis.cluster_secret: a random value of 16 characters or more, the same on every instance, in ${SECRETS_FILE} (instances sign their messages with it, so that whoever can write to Redis cannot forge an approval)`,
    );
  }
  const auth = parsed.server.auth;
  const authWhere = locate(sources, ["server", "auth"]);
  if (auth.mode === "jwt") {
    const keys = [auth.jwt.secret, auth.jwt.public_key, auth.jwt.jwks_url].filter((value) => value !== undefined && value !== "");
    if (keys.length !== 1) {
      throw new ConfigError(
        `${authWhere}: server.auth.mode jwt needs exactly one of server.auth.jwt.secret, server.auth.jwt.public_key or server.auth.jwt.jwks_url (got ${keys.length})`,
      );
    }
  }
  if (auth.mode === "users" && !auth.users_file) {
    throw new ConfigError(`${authWhere}: server.auth.mode users needs server.auth.users_file (make its lines with \`npm run hash-token\`)`);
  }
  const openai = {
    ...parsed.openai,
    api_key: parsed.openai.api_key || env.OPENAI_API_KEY || undefined,
    base_url: parsed.openai.base_url || env.OPENAI_BASE_URL || undefined,
    default_model: parsed.openai.default_model || env.OPENAI_DEFAULT_MODEL || ConfigSchema.shape.openai.parse({}).default_model,
  };
  const azure = azureFrom(
    parsed,
    openai,
    env,
    sources.some((source) => isPlainObject(source.data) && "azure" in source.data),
  );
  if (azure) {
    const where = locate(sources, parsed.openai.provider === "azure" ? ["openai", "provider"] : ["azure"]);
    if (!azure.endpoint)
      throw new ConfigError(`${where}: Azure OpenAI needs azure.endpoint (or AZURE_OPENAI_ENDPOINT): https://<resource>.openai.azure.com`);
    if (!azure.api_key)
      throw new ConfigError(`${where}: Azure OpenAI needs azure.api_key (or AZURE_OPENAI_API_KEY), best in ${SECRETS_FILE}`);
    if (azure.default_model) openai.default_model = azure.default_model;
  }
  const server = { ...parsed.server, auth_token: parsed.server.auth_token || env.MCP_AGENT_AUTH_TOKEN || undefined };
  const levelName = parsed.logger.level;
  const logLevel: LogLevel = levelName === "warning" ? "warn" : levelName;
  const mcpCredentials = Object.values(parsed.mcp.servers).flatMap((entry) => [
    entry.auth?.api_key,
    entry.auth?.oauth?.client_secret,
    entry.auth?.oauth?.private_key,
    entry.auth?.oauth?.access_token,
    entry.auth?.oauth?.refresh_token,
    entry.auth?.oauth?.cross_app_access?.idp_client_secret,
    entry.auth?.oauth?.cross_app_access?.id_token,
  ]);
  const secretValues = [
    openai.api_key,
    azure?.api_key,
    server.auth_token,
    auth.admin_token,
    auth.jwt.secret,
    parsed.oauth.encryption_key,
    ...mcpCredentials,
    ...stringLeaves(sources[1]?.data),
  ].filter((value): value is string => typeof value === "string" && value.length >= 6);
  return {
    ...parsed,
    server,
    // `provider` resolved: "azure" when Azure OpenAI is used, else "openai".
    openai: { ...openai, provider: azure ? "azure" : "openai" },
    azure,
    logLevel,
    configDir,
    secretValues: [...new Set(secretValues)],
  };
}

/** The Azure OpenAI version used when neither the config nor AZURE_OPENAI_API_VERSION / OPENAI_API_VERSION names one. */
export const DEFAULT_AZURE_API_VERSION = "2024-10-21";

/**
 * Azure OpenAI's settings when it is the provider (`openai.provider: azure`, or an `azure:`
 * section written in a file): the azure: section's keys, else the same keys under openai:, else
 * mcp-agent's AZURE_OPENAI_* variables. Undefined for any other provider.
 */
function azureFrom(
  parsed: ParsedConfig,
  openai: ParsedConfig["openai"],
  env: Record<string, string | undefined>,
  sectionWritten: boolean,
): AzureSettings | undefined {
  const provider = parsed.openai.provider ?? (sectionWritten ? "azure" : "openai");
  if (provider !== "azure") return undefined;
  const section = parsed.azure ?? {};
  const pick = (...values: (string | undefined)[]) => values.find((value) => value !== undefined && value !== "");
  return {
    api_key: pick(section.api_key, parsed.openai.provider === "azure" ? openai.api_key : undefined, env.AZURE_OPENAI_API_KEY),
    endpoint: pick(section.endpoint, openai.endpoint, env.AZURE_OPENAI_ENDPOINT),
    api_version:
      pick(section.api_version, openai.api_version, env.AZURE_OPENAI_API_VERSION, env.OPENAI_API_VERSION) ?? DEFAULT_AZURE_API_VERSION,
    azure_deployment: pick(
      section.azure_deployment,
      openai.azure_deployment,
      env.AZURE_OPENAI_DEPLOYMENT,
      env.AZURE_OPENAI_DEPLOYMENT_NAME,
    ),
    default_model: pick(section.default_model),
    credential_scopes: section.credential_scopes,
  };
}

/** Reads the config file and the secrets file beside it. */
export function loadConfig(configPath: string, env: Record<string, string | undefined>): Config {
  const absolute = path.resolve(configPath);
  if (!existsSync(absolute)) throw new ConfigError(`${configPath}: config file not found`);
  const configDir = path.dirname(absolute);
  const secretsPath = [SECRETS_FILE, SECRETS_FILE_ALT].map((name) => path.join(configDir, name)).find((file) => existsSync(file)) ?? "";
  const secrets = secretsPath ? { file: secretsPath, text: readFileSync(secretsPath, "utf8") } : undefined;
  return parseConfig({ file: absolute, text: readFileSync(absolute, "utf8") }, secrets, env, configDir);
}

/** Relative paths in the config are relative to the config file's folder. */
export function resolveConfigPath(config: Config, target: string): string {
  return path.resolve(config.configDir, target);
}

/**
 * Every key path of the schema with its default (undefined when it has none), e.g.
 * `["limits.max_sessions", 1000]`; a server entry's keys read `mcp.servers.<name>.<key>`.
 * The configuration document is checked against this list, so it cannot drift from the schema.
 */
export function configKeys(): [string, unknown][] {
  const keys: [string, unknown][] = [];
  const walk = (schema: z.ZodType, keyPath: string, fallback: unknown): void => {
    if (schema instanceof z.ZodDefault || schema instanceof z.ZodPrefault) {
      return walk(schema.unwrap() as z.ZodType, keyPath, schema.def.defaultValue);
    }
    if (schema instanceof z.ZodOptional || schema instanceof z.ZodNullable) return walk(schema.unwrap() as z.ZodType, keyPath, fallback);
    if (schema instanceof z.ZodObject) {
      for (const [key, child] of Object.entries(schema.shape)) walk(child as z.ZodType, keyPath ? `${keyPath}.${key}` : key, undefined);
      return;
    }
    if (schema instanceof z.ZodRecord && keyPath === "mcp.servers")
      return walk(schema.valueType as z.ZodType, `${keyPath}.<name>`, undefined);
    keys.push([keyPath, fallback]);
  };
  walk(ConfigSchema, "", undefined);
  return keys;
}
