// Per-user sessions: a plain Map of UserSession, each owning its MCP hub, its history and a
// turn queue that runs one turn at a time. Sessions outlive sockets; an idle sweep ends them.
import { randomUUID } from "node:crypto";
import { runTurn, TurnError, type AgentSettings, type ChatMessage, type TurnHooks } from "./agent.ts";
import { historyItems, trimHistory, type HistoryEntry } from "./history.ts";
import { fullBucket, takeToken, type Bucket, type RateLimit } from "./rate-limit.ts";
import type { Logger } from "./log.ts";
import type { McpHub, ServerInfo } from "./mcp.ts";
import {
  answerFrame,
  displayArguments,
  preview,
  turnErrorFrame,
  turnErrorText,
  type HistoryItem,
  type ServerFrame,
  type StreamFrame,
  type TurnStatus,
} from "./protocol.ts";

/** One open socket of a user, as the session sees it. */
export interface Peer {
  readonly id: number;
  /** Opted in to the streaming frames (`?stream=1`); otherwise it gets only the seed's frames. */
  readonly streaming: boolean;
  send(frame: ServerFrame): void;
}

interface QueuedTurn {
  turnId: string;
  peer: Peer;
  text: string;
}

interface RunningTurn {
  turnId: string;
  peer: Peer;
  abort: AbortController;
  /** Every streaming frame of this turn so far, replayed to a streaming socket that joins mid-turn. */
  frames: StreamFrame[];
}

export interface SessionDeps {
  agent: AgentSettings;
  log: Logger;
  maxHistoryMessages: number;
  /** Turns waiting behind the running one; more are refused with an error frame. */
  maxQueuedTurns: number;
  rateLimit: RateLimit;
  /** Removes secrets from text that goes to a client. */
  redact(text: string): string;
}

export interface SessionInfo {
  user_id: string;
  session_id: string;
  created_at: string;
  last_activity: string;
  message_count: number;
  open_sockets: number;
  turn_running: boolean;
  queued_turns: number;
  mcp_servers: ServerInfo[];
}

export class UserSession {
  readonly userId: string;
  readonly sessionId: string;
  readonly createdAt = new Date();
  lastActivity = Date.now();
  messageCount = 0;
  readonly peers = new Set<Peer>();
  readonly hub: McpHub;
  #entries: HistoryEntry[] = [];
  readonly #queue: QueuedTurn[] = [];
  #running: RunningTurn | undefined;
  #pumping = false;
  #closed = false;
  #bucket: Bucket;
  readonly #deps: SessionDeps;

  constructor(userId: string, sessionId: string, hub: McpHub, deps: SessionDeps) {
    this.userId = userId;
    this.sessionId = sessionId;
    this.hub = hub;
    this.#deps = deps;
    this.#bucket = fullBucket(deps.rateLimit, Date.now());
    // Servers start with the session, so they are usually ready before the first message.
    void hub.ready();
  }

  /** What the model sees of earlier turns. */
  get history(): ChatMessage[] {
    return this.#entries.map((entry) => entry.message);
  }

  historyItems(): HistoryItem[] {
    return historyItems(this.#entries);
  }

  get busy(): boolean {
    return this.#running !== undefined || this.#queue.length > 0;
  }

  attach(peer: Peer): void {
    this.peers.add(peer);
    this.lastActivity = Date.now();
    // A page reloaded mid-turn picks the turn up where it is, then gets the live frames.
    if (peer.streaming && this.#running) for (const frame of this.#running.frames) peer.send(frame);
  }

  detach(peer: Peer): void {
    this.peers.delete(peer);
    this.lastActivity = Date.now();
  }

  /** Queues a chat message; turns run one at a time, in arrival order. Refusals say why. */
  submit(peer: Peer, text: string, now = Date.now()): { ok: true; turnId: string } | { ok: false; error: string } {
    const { maxQueuedTurns, rateLimit } = this.#deps;
    const decision = takeToken(this.#bucket, rateLimit, now);
    this.#bucket = decision.bucket;
    if (!decision.allowed) {
      const seconds = Math.ceil(decision.retryAfterMs / 1000);
      return {
        ok: false,
        error: `Too many messages: the limit is ${rateLimit.perMinute} per minute (limits.messages_per_minute). Retry in ${seconds} s`,
      };
    }
    if (this.#queue.length >= maxQueuedTurns) {
      return {
        ok: false,
        error: `Too many messages waiting: ${this.#queue.length} are queued behind the running turn (limits.max_queued_turns). Wait for an answer, then send again`,
      };
    }
    const turnId = randomUUID();
    this.lastActivity = now;
    this.messageCount++;
    this.#queue.push({ turnId, peer, text });
    void this.#pump();
    return { ok: true, turnId };
  }

  /** Stops the running turn, if any; queued turns then run as usual. */
  cancel(): boolean {
    if (!this.#running || this.#running.abort.signal.aborted) return false;
    this.#running.abort.abort();
    return true;
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      for (let next = this.#queue.shift(); next && !this.#closed; next = this.#queue.shift()) {
        await this.#runOne(next);
      }
    } finally {
      this.#pumping = false;
    }
  }

  /** Sends a streaming frame to every streaming socket of the user and keeps it for replay. */
  #broadcast(turn: RunningTurn, frame: StreamFrame): void {
    turn.frames.push(frame);
    for (const peer of this.peers) if (peer.streaming) peer.send(frame);
  }

  async #runOne({ turnId, peer, text }: QueuedTurn): Promise<void> {
    const { log, agent } = this.#deps;
    const fields = { user_id: this.userId, session_id: this.sessionId, turn_id: turnId };
    const turn: RunningTurn = { turnId, peer, abort: new AbortController(), frames: [] };
    this.#running = turn;
    const started = Date.now();
    log.info("turn_start", { ...fields, chars: text.length });
    this.#broadcast(turn, { type: "turn_start", turn_id: turnId, input: text });
    const toolMeta = new Map<string, { name: string; server: string; tool: string; ok: boolean }>();
    const hooks: TurnHooks = {
      onTextDelta: (delta) => this.#broadcast(turn, { type: "delta", turn_id: turnId, text: delta }),
      onToolStart: (call) => {
        toolMeta.set(call.callId, { name: call.name, server: call.server, tool: call.tool, ok: false });
        this.#broadcast(turn, {
          type: "tool_start",
          turn_id: turnId,
          call_id: call.callId,
          name: call.name,
          server: call.server,
          tool: call.tool,
          arguments: displayArguments(call.arguments),
        });
      },
      onToolEnd: (call) => {
        const meta = toolMeta.get(call.callId);
        if (meta) meta.ok = call.ok;
        this.#broadcast(turn, {
          type: "tool_end",
          turn_id: turnId,
          call_id: call.callId,
          ok: call.ok,
          preview: preview(this.#deps.redact(call.result)),
          duration_ms: call.durationMs,
        });
      },
    };
    const remember = (messages: ChatMessage[], status: TurnStatus) => {
      const entries = messages.map((message): HistoryEntry => {
        const tool = message.role === "tool" ? toolMeta.get(message.tool_call_id) : undefined;
        return { turnId, message, ...(message.role === "user" ? { status } : {}), ...(tool ? { tool } : {}) };
      });
      this.#entries = trimHistory([...this.#entries, ...entries], this.#deps.maxHistoryMessages);
    };

    let status: TurnStatus;
    try {
      await this.hub.ready();
      turn.abort.signal.throwIfAborted();
      const result = await runTurn(agent, this.hub, this.history, text, { signal: turn.abort.signal, hooks, logFields: fields });
      status = "ok";
      remember(result.messages, status);
      this.#finish(turn, { type: "answer", turn_id: turnId, ...answerFrame(result.answer, this.userId, this.sessionId) });
    } catch (error) {
      const cancelled = turn.abort.signal.aborted;
      status = cancelled ? "cancelled" : "error";
      remember(error instanceof TurnError ? error.messages : [{ role: "user", content: text }], status);
      if (cancelled) {
        this.#finish(turn, { type: "cancelled", turn_id: turnId }, turnErrorFrame("the turn was cancelled"));
      } else {
        const reason = this.#deps.redact(error instanceof Error ? error.message : String(error));
        this.#finish(turn, { type: "error", turn_id: turnId, error: turnErrorText(reason) });
        log.warn("turn_error", { ...fields, error: reason });
      }
    } finally {
      this.#running = undefined;
      this.lastActivity = Date.now();
    }
    log.info("turn_end", { ...fields, status, duration_ms: Date.now() - started });
  }

  /**
   * Ends a turn: streaming sockets get the final streaming frame; a seed-style socket that asked
   * gets its one seed frame (the answer, or an error). If the asker has gone, the turn is still
   * in the history for when it comes back.
   */
  #finish(turn: RunningTurn, final: StreamFrame, seedFrame?: ServerFrame): void {
    this.#broadcast(turn, final);
    if (turn.peer.streaming || !this.peers.has(turn.peer)) return;
    if (seedFrame) return turn.peer.send(seedFrame);
    if (final.type === "answer") turn.peer.send(answerFrame(final.message, final.user_id, final.session_id));
    else if (final.type === "error") turn.peer.send({ error: final.error });
  }

  info(): SessionInfo {
    return {
      user_id: this.userId,
      session_id: this.sessionId,
      created_at: this.createdAt.toISOString(),
      last_activity: new Date(this.lastActivity).toISOString(),
      message_count: this.messageCount,
      open_sockets: this.peers.size,
      turn_running: this.#running !== undefined,
      queued_turns: this.#queue.length,
      mcp_servers: this.hub.info(),
    };
  }

  /** Idempotent: drops queued turns, stops the running one and the MCP servers this session owns. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
    this.#running?.abort.abort();
    await this.hub.close();
  }
}

/** Pure: which sessions the sweep ends at `now`. */
export function idleSessionIds(
  sessions: Iterable<{ userId: string; openSockets: number; busy: boolean; lastActivity: number }>,
  now: number,
  idleMs: number,
): string[] {
  const idle: string[] = [];
  for (const session of sessions) {
    if (session.openSockets === 0 && !session.busy && now - session.lastActivity > idleMs) idle.push(session.userId);
  }
  return idle;
}

export interface SessionManagerOptions {
  deps: SessionDeps;
  createHub(userId: string, sessionId: string): McpHub;
  idleMs: number;
  sweepIntervalMs: number;
}

export class SessionManager {
  readonly #sessions = new Map<string, UserSession>();
  readonly #options: SessionManagerOptions;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: SessionManagerOptions) {
    this.#options = options;
  }

  get size(): number {
    return this.#sessions.size;
  }

  userIds(): string[] {
    return [...this.#sessions.keys()];
  }

  get(userId: string): UserSession | undefined {
    return this.#sessions.get(userId);
  }

  /** Synchronous, so concurrent first connections of one user can only ever make one session. */
  getOrCreate(userId: string): UserSession {
    const existing = this.#sessions.get(userId);
    if (existing) return existing;
    const sessionId = randomUUID();
    const session = new UserSession(userId, sessionId, this.#options.createHub(userId, sessionId), this.#options.deps);
    this.#sessions.set(userId, session);
    this.#options.deps.log.info("session_created", { user_id: userId, session_id: session.sessionId });
    return session;
  }

  startSweeper(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.sweep(Date.now()), this.#options.sweepIntervalMs);
    this.#timer.unref();
  }

  /** Ends sessions with no open socket that have been idle longer than the idle timeout. */
  async sweep(now: number): Promise<string[]> {
    const candidates = [...this.#sessions.values()].map((session) => ({
      userId: session.userId,
      openSockets: session.peers.size,
      busy: session.busy,
      lastActivity: session.lastActivity,
    }));
    const idle = idleSessionIds(candidates, now, this.#options.idleMs);
    await Promise.all(
      idle.map(async (userId) => {
        const session = this.#sessions.get(userId);
        if (!session) return;
        this.#sessions.delete(userId);
        await session.close();
        this.#options.deps.log.info("session_swept", {
          user_id: userId,
          session_id: session.sessionId,
          idle_ms: now - session.lastActivity,
        });
      }),
    );
    return idle;
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    const sessions = [...this.#sessions.values()];
    this.#sessions.clear();
    await Promise.all(sessions.map((session) => session.close()));
  }
}
