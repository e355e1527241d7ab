// Prometheus metrics (prom-client) for GET /metrics. One Registry per server instance, never the
// library's global one, so many servers in one process (tests) keep their own numbers. Parts
// record through the small MetricsRecorder interface; gauges are read from their owners at scrape.
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { ErrorCode, TokenUsage } from "../protocol.ts";

/** What the parts of the server report as it happens. */
export interface MetricsRecorder {
  turnEnded(outcome: string, seconds: number): void;
  modelCall(outcome: "ok" | "error", seconds: number): void;
  toolCall(server: string, tool: string, outcome: "ok" | "error"): void;
  tokens(usage: TokenUsage): void;
  /** A message, connection or turn refused, by its code (e.g. "quota_exceeded"; the codes of lib/protocol.ts). */
  refused(code: ErrorCode): void;
  /** An MCP server's message dropped: a notification past the rate limit, or a message past the size cap. */
  mcpDropped(reason: "rate" | "size"): void;
}

/** For parts used without a server (pure tests, tools): records nothing. */
export const noMetrics: MetricsRecorder = {
  turnEnded: () => undefined,
  modelCall: () => undefined,
  toolCall: () => undefined,
  tokens: () => undefined,
  refused: () => undefined,
  mcpDropped: () => undefined,
};

/** What is counted at scrape time, from the objects that own it. */
export interface MetricsSources {
  liveSessions(): number;
  storedSessions(): Promise<number>;
  openSockets(): number;
  /** The state of every MCP server of every live session (and the shared ones). */
  mcpServerStates(): Iterable<string>;
}

/**
 * Distinct label values one metric keeps; later new ones are counted as `other`. Labels come from
 * outside (MCP servers' tool names, a model's invented ones): each series costs memory and every
 * scrape, so the set is bounded whatever they send.
 */
export const MAX_LABEL_VALUES = 500;
/** A label value longer than this is not a name we know: it is counted as `other`. */
const MAX_LABEL_CHARS = 128;

/** Label values as they are first seen, up to `max`; anything later or odd is `other`. */
export class BoundedLabels {
  readonly #seen = new Set<string>();
  readonly #max: number;
  constructor(max = MAX_LABEL_VALUES) {
    this.#max = max;
  }
  of(value: string): string {
    if (this.#seen.has(value)) return value;
    if (value.length > MAX_LABEL_CHARS || this.#seen.size >= this.#max) return "other";
    this.#seen.add(value);
    return value;
  }
}

// Seconds: a turn runs from under a second to minutes (tool calls, approvals); a model call less.
const TURN_BUCKETS = [0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const MODEL_CALL_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class Metrics implements MetricsRecorder {
  readonly #registry = new Registry();
  readonly #turns: Counter<"outcome">;
  readonly #turnSeconds: Histogram<"outcome">;
  readonly #modelSeconds: Histogram<"outcome">;
  readonly #toolCalls: Counter<"server" | "tool" | "outcome">;
  readonly #tokens: Counter<"kind">;
  readonly #refusals: Counter<"code">;
  readonly #mcpDropped: Counter<"reason">;
  readonly #toolLabels = new BoundedLabels();
  readonly #outcomeLabels = new BoundedLabels(20);

  constructor(sources: MetricsSources) {
    const registers = [this.#registry];
    new Gauge({
      name: "mcp_agent_sessions",
      help: "Sessions: live in memory on this instance, and stored (live or not)",
      labelNames: ["state"],
      registers,
      async collect() {
        this.set({ state: "live" }, sources.liveSessions());
        this.set({ state: "stored" }, await sources.storedSessions());
      },
    });
    new Gauge({
      name: "mcp_agent_open_sockets",
      help: "Open WebSocket connections on this instance",
      registers,
      collect() {
        this.set(sources.openSockets());
      },
    });
    new Gauge({
      name: "mcp_agent_mcp_servers",
      help: "MCP servers of live sessions by state",
      labelNames: ["state"],
      registers,
      collect() {
        this.reset();
        const counts = new Map<string, number>();
        for (const state of sources.mcpServerStates()) counts.set(state, (counts.get(state) ?? 0) + 1);
        for (const [state, count] of counts) this.set({ state }, count);
      },
    });
    this.#turns = new Counter({ name: "mcp_agent_turns_total", help: "Turns ended, by outcome", labelNames: ["outcome"], registers });
    this.#turnSeconds = new Histogram({
      name: "mcp_agent_turn_duration_seconds",
      help: "Turn duration from start to its last frame, by outcome",
      labelNames: ["outcome"],
      buckets: TURN_BUCKETS,
      registers,
    });
    this.#modelSeconds = new Histogram({
      name: "mcp_agent_model_call_duration_seconds",
      help: "Model call duration (request to the end of the stream), by outcome",
      labelNames: ["outcome"],
      buckets: MODEL_CALL_BUCKETS,
      registers,
    });
    this.#toolCalls = new Counter({
      name: "mcp_agent_tool_calls_total",
      help: "Tool calls by MCP server, tool and outcome",
      labelNames: ["server", "tool", "outcome"],
      registers,
    });
    this.#tokens = new Counter({
      name: "mcp_agent_tokens_total",
      help: "Model tokens by kind: prompt, completion, cached (a part of prompt)",
      labelNames: ["kind"],
      registers,
    });
    this.#refusals = new Counter({
      name: "mcp_agent_refusals_total",
      help: "Messages, connections and turns refused, by their error code",
      labelNames: ["code"],
      registers,
    });
    // By reason only: per-server labels would grow with every user's servers.
    this.#mcpDropped = new Counter({
      name: "mcp_agent_mcp_messages_dropped_total",
      help: "MCP server messages dropped: notifications past limits.mcp_notifications_per_second (rate), messages past limits.mcp_max_message_bytes (size)",
      labelNames: ["reason"],
      registers,
    });
  }

  mcpDropped(reason: "rate" | "size"): void {
    this.#mcpDropped.inc({ reason });
  }

  get contentType(): string {
    return this.#registry.contentType;
  }

  /** The Prometheus text exposition of every metric. */
  scrape(): Promise<string> {
    return this.#registry.metrics();
  }

  turnEnded(outcome: string, seconds: number): void {
    const label = this.#outcomeLabels.of(outcome);
    this.#turns.inc({ outcome: label });
    this.#turnSeconds.observe({ outcome: label }, seconds);
  }

  modelCall(outcome: "ok" | "error", seconds: number): void {
    this.#modelSeconds.observe({ outcome }, seconds);
  }

  toolCall(server: string, tool: string, outcome: "ok" | "error"): void {
    // A call to no known server is a tool the model invented: one label for all of them.
    if (!server) this.#toolCalls.inc({ server: "unknown", tool: "unknown", outcome });
    else {
      const pair = this.#toolLabels.of(`${server}\u0000${tool}`);
      const [serverLabel = "other", toolLabel = "other"] = pair === "other" ? [] : pair.split("\u0000");
      this.#toolCalls.inc({ server: serverLabel, tool: toolLabel, outcome });
    }
  }

  tokens(usage: TokenUsage): void {
    this.#tokens.inc({ kind: "prompt" }, usage.prompt_tokens);
    this.#tokens.inc({ kind: "completion" }, usage.completion_tokens);
    this.#tokens.inc({ kind: "cached" }, usage.cached_tokens);
  }

  refused(code: ErrorCode): void {
    this.#refusals.inc({ code });
  }
}
