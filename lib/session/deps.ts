// What a user's session is given (its settings, caps and the server's shared parts, the same for
// every session), and what the SessionManager is given; both built once by server.ts.
import type { AgentSettings } from "../agent/types.ts";
import type { AttachmentSettings } from "../attachments/prepare.ts";
import type { Logger, Redactor } from "../log.ts";
import type { McpHub } from "../mcp/hub.ts";
import type { ServerActions } from "../mcp/server-actions.ts";
import type { MetricsRecorder } from "../metrics/metrics.ts";
import type { SessionStore } from "../store/store.ts";
import type { Tracing } from "../telemetry/tracer.ts";
import type { Workspaces } from "../workspace/workspaces.ts";
import type { NewSessionLimiter } from "./admission.ts";
import type { ApprovalPolicy } from "./approvals.ts";
import type { Coordinator } from "./coordinator.ts";
import type { RateLimit } from "./rate-limit.ts";

export interface SessionDeps {
  agent: AgentSettings;
  log: Logger;
  maxHistoryMessages: number;
  /** Turns waiting behind the running one; more are refused with an error frame. */
  maxQueuedTurns: number;
  /** limits.max_replay_bytes: the most of a running turn a socket joining mid-turn is sent. */
  maxReplayBytes?: number;
  rateLimit: RateLimit;
  /** `history` requests, a bucket apart so a reconnecting page never costs a chat message. */
  historyRateLimit: RateLimit;
  /** Removes secrets from text that goes to a client. */
  redactor: Redactor;
  store: SessionStore;
  /** Which tool calls wait for a person's approval. */
  approvalPolicy: ApprovalPolicy;
  approvalTimeoutMs: number;
  /** A turn running longer than this is stopped with an error (agent.max_turn_seconds). */
  maxTurnMs: number;
  /** Cap on `maxTokens` of an MCP server's sampling request (limits.max_sampling_tokens). */
  maxSamplingTokens: number;
  /** An elicitation form larger than this (characters of JSON) fails the server's request (limits.mcp_max_elicitation_chars). */
  maxElicitationChars?: number;
  /** Longest chat message (limits.max_message_chars): a sampling prompt is held to it too. */
  maxMessageChars: number;
  /** Turn leases, and the user's activity on other instances (LocalCoordinator on one instance). */
  coordinator: Coordinator;
  workspaces: Workspaces;
  /** How attachments are read and capped (lib/attachments); undefined: messages with attachments are refused. */
  attachments?: AttachmentSettings;
  /** Whether a call of this tool may change the workspace's files (then the sockets get files_changed). */
  changesWorkspace?: (server: string, tool: string) => boolean;
  /** Model tokens a user may use per UTC day (limits.tokens_per_day); undefined: no quota. */
  tokensPerDay: number | undefined;
  metrics: MetricsRecorder;
  /** Whether a session that holds nothing yet may start its first turn (limits.max_sessions); why not. */
  admitFirstTurn?: () => string | undefined;
  /** The server's tracer: spans for turns, model and tool calls, approvals and session starts. */
  tracing?: Tracing;
  /** What a socket's server_* frames do (retry, connect, add, remove): lib/mcp/server-actions.ts. */
  serverActions?: ServerActions;
}

export interface SessionManagerOptions {
  deps: SessionDeps;
  createHub(userId: string, sessionId: string): McpHub;
  idleMs: number;
  sweepIntervalMs: number;
  /** A session whose tools were not used for this long stops its MCP processes until its next turn. */
  mcpIdleMs: number;
  /**
   * New sessions start their MCP servers on connect (so the first answer does not wait for
   * them) while fewer than this many sessions hold running servers; beyond it, on the first turn.
   */
  maxWarmSessions: number;
  /** limits.max_sessions: sessions that hold resources; a new session's first turn past it is refused. */
  maxSessions?: number;
  /** Stored conversations idle longer than this are deleted by the sweep. */
  retentionMs: number;
  /** A session that never ran a turn, with no socket, is ended after this long (and its stored record with it). */
  idleNewMs: number;
  /** New sessions per remote address (limits.new_sessions_per_minute / new_session_burst). */
  newSessions: NewSessionLimiter;
}
