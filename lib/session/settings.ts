// What the config says about sessions, read in one place: the caps and deadlines of a user's
// session (its deps) and the manager's timing and limits.
import type { Config } from "../config.ts";
import { NewSessionLimiter } from "./admission.ts";
import { ApprovalPolicy } from "./approvals.ts";

/** The config's part of a UserSession's deps. */
export function sessionLimitsFrom(config: Config) {
  const { limits, agent, session } = config;
  return {
    maxHistoryMessages: session.max_history_messages,
    maxQueuedTurns: limits.max_queued_turns,
    maxReplayBytes: limits.max_replay_bytes,
    rateLimit: { perMinute: limits.messages_per_minute, burst: limits.message_burst },
    approvalPolicy: new ApprovalPolicy(config.mcp.servers),
    approvalTimeoutMs: agent.approval_timeout_seconds * 1000,
    maxTurnMs: agent.max_turn_seconds * 1000,
    historyRateLimit: { perMinute: limits.history_requests_per_minute, burst: limits.history_burst },
    maxSamplingTokens: limits.max_sampling_tokens,
    maxElicitationChars: limits.mcp_max_elicitation_chars,
    maxMessageChars: limits.max_message_chars,
    tokensPerDay: limits.tokens_per_day,
  };
}

/** The config's part of the SessionManager's options: the sweep's timing, the session caps. */
export function sessionManagerLimitsFrom(config: Config) {
  const { limits, session } = config;
  return {
    idleMs: session.idle_timeout_seconds * 1000,
    sweepIntervalMs: session.sweep_interval_seconds * 1000,
    retentionMs: session.retention_days * 24 * 60 * 60 * 1000,
    mcpIdleMs: session.mcp_idle_seconds * 1000,
    maxWarmSessions: limits.max_warm_sessions,
    idleNewMs: session.idle_new_session_seconds * 1000,
    maxSessions: limits.max_sessions,
    newSessions: new NewSessionLimiter(
      { perMinute: limits.new_sessions_per_minute, burst: limits.new_session_burst },
      { perMinute: limits.new_sessions_per_prefix_per_minute, burst: limits.new_session_prefix_burst },
    ),
  };
}
