// Per-user sessions: a plain Map of UserSession, each owning its MCP hub, its history and a
// turn queue that runs one turn at a time. Sessions outlive sockets; an idle sweep ends them.
import { randomUUID } from "node:crypto";
import { runTurn, TurnError, type AgentSettings, type ChatMessage } from "./agent.ts";
import { trimHistory } from "./history.ts";
import type { Logger } from "./log.ts";
import type { McpHub, ServerInfo } from "./mcp.ts";
import { answerFrame, turnErrorFrame, type ServerFrame } from "./protocol.ts";

/** One open socket of a user, as the session sees it. */
export interface Peer {
  readonly id: number;
  send(frame: ServerFrame): void;
}

interface QueuedTurn {
  peer: Peer;
  text: string;
}

export interface SessionDeps {
  agent: AgentSettings;
  log: Logger;
  maxHistoryMessages: number;
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
  #history: ChatMessage[] = [];
  readonly #queue: QueuedTurn[] = [];
  #running = false;
  #closed = false;
  readonly #deps: SessionDeps;

  constructor(userId: string, sessionId: string, hub: McpHub, deps: SessionDeps) {
    this.userId = userId;
    this.sessionId = sessionId;
    this.hub = hub;
    this.#deps = deps;
    // Servers start with the session, so they are usually ready before the first message.
    void hub.ready();
  }

  get history(): readonly ChatMessage[] {
    return this.#history;
  }

  get busy(): boolean {
    return this.#running || this.#queue.length > 0;
  }

  attach(peer: Peer): void {
    this.peers.add(peer);
    this.lastActivity = Date.now();
  }

  detach(peer: Peer): void {
    this.peers.delete(peer);
    this.lastActivity = Date.now();
  }

  /** Queues a chat message; turns run one at a time, in arrival order. */
  submit(peer: Peer, text: string): void {
    this.lastActivity = Date.now();
    this.messageCount++;
    this.#queue.push({ peer, text });
    void this.#pump();
  }

  async #pump(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      for (let next = this.#queue.shift(); next && !this.#closed; next = this.#queue.shift()) {
        await this.#runOne(next);
      }
    } finally {
      this.#running = false;
    }
  }

  async #runOne({ peer, text }: QueuedTurn): Promise<void> {
    const { log, agent } = this.#deps;
    const fields = { user_id: this.userId, session_id: this.sessionId };
    const started = Date.now();
    log.info("turn_start", { ...fields, chars: text.length });
    let frame: ServerFrame;
    try {
      await this.hub.ready();
      const result = await runTurn(agent, this.hub, this.#history, text, { logFields: fields });
      this.#remember(result.messages);
      frame = answerFrame(result.answer, this.userId, this.sessionId);
      log.info("turn_end", { ...fields, ok: true, duration_ms: Date.now() - started });
    } catch (error) {
      if (error instanceof TurnError) this.#remember(error.messages);
      const reason = this.#deps.redact(error instanceof Error ? error.message : String(error));
      frame = turnErrorFrame(reason);
      log.warn("turn_end", { ...fields, ok: false, error: reason, duration_ms: Date.now() - started });
    }
    this.lastActivity = Date.now();
    // The answer goes to the socket that asked; if it has gone, the turn is still in the history.
    if (this.peers.has(peer)) peer.send(frame);
  }

  #remember(messages: ChatMessage[]): void {
    this.#history = trimHistory([...this.#history, ...messages], this.#deps.maxHistoryMessages);
  }

  info(): SessionInfo {
    return {
      user_id: this.userId,
      session_id: this.sessionId,
      created_at: this.createdAt.toISOString(),
      last_activity: new Date(this.lastActivity).toISOString(),
      message_count: this.messageCount,
      open_sockets: this.peers.size,
      turn_running: this.#running,
      queued_turns: this.#queue.length,
      mcp_servers: this.hub.info(),
    };
  }

  /** Idempotent: drops queued turns and stops the MCP servers this session owns. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
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
