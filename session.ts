// Per-user sessions: a plain Map of UserSession, each owning its MCP hub, its history and a
// turn queue that runs one turn at a time. Sessions outlive sockets; an idle sweep ends them.
import { randomUUID } from "node:crypto";
import { runTurn } from "./agent.ts";
import { turnAttachments } from "./lib/attachments/turn-attachments.ts";
import type { ChatMessage } from "./lib/agent/types.ts";
import { historyItems, historyPage, trimHistory, type HistoryEntry } from "./lib/store/history.ts";
import { fullBucket, takeToken, type Bucket } from "./lib/session/rate-limit.ts";
import type { SessionRecord } from "./lib/store/store.ts";
import { ApprovalDesk } from "./lib/session/approvals.ts";
import { SessionAsks } from "./lib/session/asks.ts";
import type { CoordinatorMessage, TurnLease } from "./lib/session/coordinator.ts";
import type { SessionDeps, SessionManagerOptions } from "./lib/session/deps.ts";
import { idleSessionIds } from "./lib/session/idle.ts";
import { UserSockets, type Peer } from "./lib/session/fanout.ts";
import { AdmissionRefused, sleepCandidate } from "./lib/session/admission.ts";
import { Turn, type QueuedTurn } from "./lib/session/turn.ts";
import { TurnQueue } from "./lib/session/turn-queue.ts";
import { resetSession } from "./lib/session/reset.ts";
import { UsageMeter } from "./lib/session/usage-meter.ts";
import type { McpHub } from "./lib/mcp/hub.ts";
import { ServersWatch } from "./lib/mcp/server-state.ts";
import type { ResetOutcome } from "./lib/socket/dispatch.ts";
import { utcDay } from "./lib/model/usage.ts";
import { approvalAnswerSpan, sessionStartSpan } from "./lib/telemetry/spans.ts";
import { parseCarrier, type TraceCarrier } from "./lib/telemetry/tracer.ts";
import {
  serversFrame,
  queuedFrame,
  type ElicitationAction,
  type ElicitationValue,
  type HistoryItem,
  type Refusal,
  type ServerClientFrame,
  type SessionInfo,
  type AttachmentRef,
  type StreamFrame,
} from "./lib/protocol.ts";

export type { Peer } from "./lib/session/fanout.ts";

export type { SessionDeps } from "./lib/session/deps.ts";

export class UserSession {
  readonly userId: string;
  #sessionId: string;
  #createdAt: number;
  lastActivity: number;
  messageCount: number;
  /** The trace context of the user's turn running on another instance, from its last frame. */
  #remoteTrace: TraceCarrier | undefined;
  /** The user's open sockets on this instance; every frame to them goes through it. */
  readonly sockets: UserSockets;
  readonly hub: McpHub;
  #entries: HistoryEntry[] = [];
  /** The history items of `#entries` as last computed: a repeated `history` request costs a slice. */
  #itemsCache: { entries: HistoryEntry[]; items: HistoryItem[] } | undefined;
  /** The turns waiting and the one running; a Turn per message. */
  readonly #turns: TurnQueue;
  #closed = false;
  #bucket: Bucket;
  #historyBucket: Bucket;
  readonly #approvals: ApprovalDesk;
  /** What the user's MCP servers ask back (sampling, elicitation). */
  readonly #asks: SessionAsks;
  /** The user's model calls (turns' and sampling's): metrics, the store, the daily quota. */
  readonly #meter: UsageMeter;
  readonly #deps: SessionDeps;

  constructor(record: SessionRecord, entries: HistoryEntry[], hub: McpHub, deps: SessionDeps) {
    this.userId = record.userId;
    this.#sessionId = record.sessionId;
    this.#createdAt = record.createdAt;
    this.lastActivity = record.lastActivity;
    this.messageCount = record.messageCount;
    this.#entries = entries;
    this.hub = hub;
    this.#deps = deps;
    this.sockets = new UserSockets(record.userId, deps.coordinator, deps.maxReplayBytes);
    this.#bucket = fullBucket(deps.rateLimit, Date.now());
    this.#historyBucket = fullBucket(deps.historyRateLimit, Date.now());
    this.#meter = new UsageMeter({
      userId: record.userId,
      store: deps.store,
      metrics: deps.metrics,
      tokensPerDay: deps.tokensPerDay,
      log: deps.log,
      redactor: deps.redactor,
    });
    this.#approvals = new ApprovalDesk({
      timeoutMs: deps.approvalTimeoutMs,
      log: deps.log,
      logFields: () => ({ user_id: this.userId, session_id: this.#sessionId }),
      canAsk: () => this.sockets.anyStreaming,
      broadcast: (frame) => this.sockets.turnFrame(frame),
    });
    this.#asks = new SessionAsks({
      agent: deps.agent,
      approvals: this.#approvals,
      maxSamplingTokens: deps.maxSamplingTokens,
      ...(deps.maxElicitationChars !== undefined ? { maxElicitationChars: deps.maxElicitationChars } : {}),
      maxMessageChars: deps.maxMessageChars,
      timeoutMs: deps.approvalTimeoutMs,
      turnId: () => this.#turns.running?.turnId,
      canAsk: () => this.sockets.anyStreaming,
      takeToken: () => this.#takeToken(Date.now()),
      quotaRefusal: async () => (await this.#meter.refusal())?.error,
      // Part of the running turn's usage when there is one; else the user's, under no turn.
      onModelCall: (call) =>
        this.#turns.running
          ? this.#turns.running.onModelCall(call)
          : this.#meter.record(call, { sessionId: this.#sessionId, turnId: "" }, { user_id: this.userId, session_id: this.#sessionId }),
      // Part of the running turn when there is one (a page reloaded mid-turn sees the form again).
      send: (frame) => (this.#turns.running ? this.sockets.turnFrame(frame) : this.sockets.broadcast(frame)),
      log: deps.log,
      logFields: () => ({ user_id: this.userId, session_id: this.#sessionId }),
    });
    hub.attach(this.#asks);
    this.#turns = new TurnQueue({
      userId: record.userId,
      sockets: this.sockets,
      coordinator: deps.coordinator,
      log: deps.log,
      redactor: deps.redactor,
      maxQueuedTurns: deps.maxQueuedTurns,
      quotaRefusal: () => this.#meter.refusal(),
      reload: (lease) => this.#reload(lease),
      turn: (queued, lease) => this.#turn(queued, lease),
      run: (turn, queued) => turn.run(hub, (toolbox, options) => runTurn(deps.agent, toolbox, this.history, queued.text, options)),
      ended: () => {
        this.lastActivity = Date.now();
      },
    });
    // Every tab sees its servers' state as it changes: the `servers` frame.
    const watch = new ServersWatch(
      () => hub.statuses(),
      (servers) => this.sockets.broadcast(serversFrame(servers)),
    );
    hub.onChange(() => watch.changed());
  }

  /** A socket's frame about one of the user's MCP servers. */
  serverAction(peer: Peer, frame: ServerClientFrame): void {
    this.#deps.serverActions?.handle(this, peer, frame);
  }

  /** A person's answer to an elicitation_request; why not, when it was not taken. */
  answerElicitation(
    requestId: string,
    action: ElicitationAction,
    content: Record<string, ElicitationValue> | undefined,
    socketId: number,
  ): Refusal | undefined {
    if (this.#asks.has(requestId) || !this.#deps.coordinator.spansInstances) return this.#asks.answer(requestId, action, content, socketId);
    // The question may come from a server of this user on another instance: hand the answer over
    // (that instance checks it; its elicitation_resolved frame tells every tab the outcome).
    this.#deps.coordinator.publish(this.userId, {
      kind: "elicitation",
      request_id: requestId,
      action,
      ...(content !== undefined ? { content } : {}),
      socket: socketId,
    });
    return undefined;
  }

  /** One message from the rate limit; why not, when it is spent. */
  #takeToken(now: number): string | undefined {
    const { rateLimit } = this.#deps;
    const decision = takeToken(this.#bucket, rateLimit, now);
    this.#bucket = decision.bucket;
    if (decision.allowed) return undefined;
    const seconds = Math.ceil(decision.retryAfterMs / 1000);
    return `Too many messages: the limit is ${rateLimit.perMinute} per minute (limits.messages_per_minute). Retry in ${seconds} s`;
  }

  /** A person's answer to an approval request; false when nothing waits under that id. */
  answerApproval(callId: string, approved: boolean, reason: string | undefined, always: boolean, socketId: number): boolean {
    if (this.#approvals.answer(callId, approved, reason, always, socketId)) return true;
    // The turn may be waiting on another instance: hand the answer over; it cannot be refused here.
    if (!this.#deps.coordinator.spansInstances) return false;
    // A span here, in the trace of the turn that asked (on the instance running it).
    const span = this.#deps.tracing && approvalAnswerSpan(this.#deps.tracing, this.#remoteTrace, { callId, approved });
    const trace = span?.carrier();
    span?.end();
    this.#deps.coordinator.publish(this.userId, {
      ...(trace ? { trace } : {}),
      kind: "approval",
      call_id: callId,
      approved,
      ...(reason !== undefined ? { reason } : {}),
      always,
      socket: socketId,
    });
    return true;
  }

  get sessionId(): string {
    return this.#sessionId;
  }

  /** Ran a turn (here or before a restart) or holds MCP processes: a session that costs something. */
  get holdsResources(): boolean {
    return this.messageCount > 0 || this.#entries.length > 0 || this.hub.warm;
  }

  record(): SessionRecord {
    return {
      userId: this.userId,
      sessionId: this.#sessionId,
      createdAt: this.#createdAt,
      lastActivity: this.lastActivity,
      messageCount: this.messageCount,
    };
  }

  /** New chat: a new session_id, an empty history, and the workspace emptied when asked (lib/session/reset.ts). */
  reset(clearWorkspace: boolean): Promise<ResetOutcome> {
    const { store, workspaces, log, redactor } = this.#deps;
    return resetSession(
      {
        userId: this.userId,
        sessionId: () => this.#sessionId,
        sockets: this.sockets,
        turns: this.#turns,
        store,
        workspaces,
        log,
        redactor,
        record: () => this.record(),
        startOver: (fresh) => {
          this.#entries = [];
          this.#itemsCache = undefined;
          this.#adopt(fresh, []);
          this.lastActivity = fresh.lastActivity;
          this.#approvals.forgetAlwaysAllowed();
        },
      },
      clearWorkspace,
    );
  }

  /** What the model sees of earlier turns. */
  get history(): ChatMessage[] {
    return this.#entries.map((entry) => entry.message);
  }

  historyItems(): HistoryItem[] {
    if (this.#itemsCache?.entries !== this.#entries) this.#itemsCache = { entries: this.#entries, items: historyItems(this.#entries) };
    return this.#itemsCache.items;
  }

  /** One page of the history (see historyPage in lib/store/history.ts). */
  historyPage(
    before: number | string | undefined,
    limit: number,
    maxChars: number,
  ): { items: HistoryItem[]; start: number; total: number } {
    return historyPage(this.historyItems(), before, limit, maxChars);
  }

  /** A `history` request costs a token of its own bucket: asking in a loop is refused, saying why. */
  takeHistoryToken(now = Date.now()): { ok: true } | ({ ok: false } & Refusal) {
    const limit = this.#deps.historyRateLimit;
    const decision = takeToken(this.#historyBucket, limit, now);
    this.#historyBucket = decision.bucket;
    if (decision.allowed) return { ok: true };
    const seconds = Math.ceil(decision.retryAfterMs / 1000);
    return {
      ok: false,
      code: "rate_limited",
      error: `Too many history requests: the limit is ${limit.perMinute} per minute (limits.history_requests_per_minute). Retry in ${seconds} s`,
    };
  }

  get busy(): boolean {
    return this.#turns.busy;
  }

  attach(peer: Peer): void {
    this.lastActivity = Date.now();
    if (peer.streaming) peer.send(serversFrame(this.hub.statuses()));
    // A page reloaded mid-turn picks the turn up where it is, then gets the live frames...
    this.sockets.add(peer);
    if (!peer.streaming) return;
    // ...and sees the messages still waiting behind it.
    this.#turns.waiting.forEach((waiting, index) =>
      peer.send(queuedFrame(waiting.turnId, waiting.text, index + (this.#turns.running ? 1 : 0), waiting.clientId)),
    );
  }

  detach(peer: Peer): void {
    this.sockets.delete(peer);
    this.lastActivity = Date.now();
  }

  /**
   * The history as the store has it, when other instances may have run turns of this user since
   * this one last read it and no turn of this user runs or waits here. Elsewhere a no-op.
   */
  async refresh(): Promise<void> {
    if (!this.#deps.coordinator.spansInstances || this.#turns.pumping) return;
    const fresh = await this.#deps.store.load(this.userId, this.#deps.maxHistoryMessages);
    if (!fresh || this.#turns.pumping) return;
    this.#adopt(fresh.record, fresh.entries);
  }

  #adopt(record: SessionRecord, entries: HistoryEntry[]): void {
    this.#sessionId = record.sessionId;
    this.#createdAt = record.createdAt;
    this.#entries = entries;
    this.messageCount = record.messageCount;
  }

  /** Queues a chat message; turns run one at a time, in arrival order. Refusals say why. */
  submit(
    peer: Peer,
    text: string,
    clientId?: string,
    now = Date.now(),
    attachments?: AttachmentRef[],
  ): { ok: true; turnId: string } | ({ ok: false } & Refusal) {
    const limited = this.#takeToken(now);
    if (limited) return { ok: false, code: "rate_limited", error: limited };
    // The first turn makes a session hold resources: it must fit under limits.max_sessions.
    const full = this.holdsResources || this.#turns.running ? undefined : this.#deps.admitFirstTurn?.();
    if (full) return { ok: false, code: "too_many_sessions", error: full };
    const queueFull = this.#turns.refusal();
    if (queueFull) return { ok: false, ...queueFull };
    const turnId = randomUUID();
    this.lastActivity = now;
    this.messageCount++;
    const position = this.#turns.push({
      turnId,
      peer,
      text,
      receivedAt: now,
      ...(clientId !== undefined ? { clientId } : {}),
      ...(attachments && attachments.length > 0 ? { attachments } : {}),
    });
    this.sockets.broadcast(queuedFrame(turnId, text, position, clientId));
    this.#turns.start();
    return { ok: true, turnId };
  }

  /** Stops the running turn, if any (here or on another instance); queued turns then run. */
  cancel(): boolean {
    // The turn in progress, here or (known from its frames) on another instance.
    const turnId = this.#turns.running?.turnId ?? this.sockets.turnInProgress;
    if (turnId !== undefined) this.#deps.coordinator.publish(this.userId, { kind: "cancel", turn_id: turnId });
    return this.#turns.running?.cancel() ?? false;
  }

  /** The user's activity on another instance. */
  onCoordinatorMessage(message: CoordinatorMessage): void {
    switch (message.kind) {
      case "frame":
        // The turn running elsewhere: an approval answered here joins its trace.
        this.#remoteTrace = parseCarrier(message.trace) ?? this.#remoteTrace;
        // New chat in another tab elsewhere: this instance's copy starts over too.
        if (message.frame.type === "reset") {
          this.#approvals.forgetAlwaysAllowed();
          if (!this.#turns.pumping) this.#adopt({ ...this.record(), sessionId: message.frame.session_id, messageCount: 0 }, []);
        }
        this.sockets.fromElsewhere(message.frame);
        return;
      case "cancel":
        // Only the turn it names: a cancel captured for another turn stops nothing.
        if (this.#turns.running?.turnId === message.turn_id) this.#turns.running.cancel();
        return;
      case "approval":
        this.#approvals.answer(message.call_id, message.approved, message.reason, message.always, message.socket);
        return;
      case "elicitation":
        this.#asks.answer(message.request_id, message.action, message.content, message.socket);
        return;
      default:
        return message satisfies never;
    }
  }

  /** Reads the history another instance may have grown, holding the lease. */
  async #reload(lease: TurnLease): Promise<void> {
    const { store } = this.#deps;
    const fresh = await store.load(this.userId, this.#deps.maxHistoryMessages);
    // The store counts turns that started; this one starts now.
    if (fresh) this.#adopt({ ...fresh.record, messageCount: fresh.record.messageCount + 1 }, fresh.entries);
    // Our turn has not started: a turn still `running` belonged to an instance that died (its
    // lease expired, or was still held when the history was read).
    for (const entry of this.#entries) {
      if (entry.status !== "running") continue;
      entry.status = "interrupted";
      this.#itemsCache = undefined;
      await store.setTurnStatus(this.#sessionId, entry.turnId, "interrupted", lease.fence);
    }
  }

  /** One turn holding the user's lease: a Turn owns everything of it; the loop is agent.ts's. */
  #turn(queued: QueuedTurn, lease: TurnLease): Turn {
    const { agent, store, metrics, log, redactor, approvalPolicy, maxTurnMs, changesWorkspace } = this.#deps;
    const sessionId = this.#sessionId;
    return new Turn(queued, {
      userId: this.userId,
      sessionId,
      sockets: this.sockets,
      lease,
      store,
      meter: this.#meter,
      metrics,
      log,
      redactor,
      approvals: this.#approvals,
      approvalPolicy,
      maxTurnMs,
      ...(changesWorkspace ? { changesWorkspace } : {}),
      sessionRecord: () => this.record(),
      prepareAttachments: (refs) => this.#prepareAttachments(queued.turnId, refs),
      tracing: this.#deps.tracing,
      model: agent.model,
      keep: (entries) => {
        // A New chat since the turn started: its entries belong to the old conversation.
        if (this.#sessionId === sessionId) this.#entries = trimHistory([...this.#entries, ...entries], this.#deps.maxHistoryMessages);
      },
    });
  }

  /** A turn's attachments as the model's user message (lib/attachments/turn-attachments.ts). */
  #prepareAttachments(turnId: string, refs: AttachmentRef[]): Promise<ChatMessage> {
    const { attachments, workspaces, agent } = this.#deps;
    return turnAttachments(refs, {
      settings: attachments,
      workspaces,
      userId: this.userId,
      sockets: this.sockets,
      turnId,
      tokens: agent.tokens,
    });
  }

  info(): SessionInfo {
    return {
      user_id: this.userId,
      active: true,
      session_id: this.sessionId,
      created_at: new Date(this.#createdAt).toISOString(),
      last_activity: new Date(this.lastActivity).toISOString(),
      message_count: this.messageCount,
      open_sockets: this.sockets.size,
      turn_running: this.#turns.running !== undefined,
      queued_turns: this.#turns.waiting.length,
      mcp_servers: this.hub.info(),
    };
  }

  /**
   * Idempotent: drops queued turns, interrupts the running one (waiting for it to be written) and
   * stops the MCP servers this session owns.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const turns = this.#turns.close();
    this.#approvals.close();
    this.#asks.close();
    await Promise.all([turns, this.hub.close()]);
  }
}

export { idleSessionIds } from "./lib/session/idle.ts";
export type { SessionManagerOptions } from "./lib/session/deps.ts";

export class SessionManager {
  readonly #sessions = new Map<string, UserSession>();
  /** Sessions being loaded from the store: concurrent first connections share one load. */
  readonly #opening = new Map<string, Promise<UserSession>>();
  readonly #options: SessionManagerOptions;
  #timer: NodeJS.Timeout | undefined;
  #reaper: NodeJS.Timeout | undefined;

  constructor(options: SessionManagerOptions) {
    this.#options = options;
  }

  /** Live sessions, counting those being opened. */
  get size(): number {
    return this.#sessions.size + this.#opening.size;
  }

  /**
   * Sessions that cost something (ran a turn, or hold MCP processes), for limits.max_sessions:
   * a flood of made-up user ids that never chat does not fill it.
   */
  heldCount(): number {
    let held = 0;
    for (const session of this.#sessions.values()) if (session.holdsResources) held++;
    return held;
  }

  userIds(): string[] {
    return [...this.#sessions.keys()];
  }

  get(userId: string): UserSession | undefined {
    return this.#sessions.get(userId);
  }

  has(userId: string): boolean {
    return this.#sessions.has(userId) || this.#opening.has(userId);
  }

  /**
   * The user's live session; else the stored one (same session_id and history); else a new one.
   * Concurrent first connections of one user share one load, so they make exactly one session.
   */
  open(userId: string, remoteAddress = "unknown"): Promise<UserSession> {
    const live = this.#sessions.get(userId);
    if (live) return Promise.resolve(live);
    let opening = this.#opening.get(userId);
    if (!opening) {
      opening = this.#load(userId, remoteAddress).finally(() => this.#opening.delete(userId));
      this.#opening.set(userId, opening);
    }
    return opening;
  }

  async #load(userId: string, remoteAddress: string): Promise<UserSession> {
    const { deps } = this.#options;
    const span = deps.tracing ? sessionStartSpan(deps.tracing, { userId }) : undefined;
    try {
      const session = await this.#loadTraced(userId, remoteAddress);
      span?.end({ "gen_ai.conversation.id": session.sessionId, "mcp_agent.outcome": "ok" });
      return session;
    } catch (error) {
      span?.fail(error instanceof AdmissionRefused ? "admission_refused" : "session_start_failed", (error as Error).message);
      span?.end();
      throw error;
    }
  }

  async #loadTraced(userId: string, remoteAddress: string): Promise<UserSession> {
    const { deps } = this.#options;
    const stored = await deps.store.load(userId, deps.maxHistoryMessages);
    const now = Date.now();
    // A returning user (a conversation in the store) is never held back by someone else's flood.
    const returning = stored !== undefined && (stored.record.messageCount > 0 || stored.entries.length > 0);
    if (!returning) {
      const refused = this.#options.newSessions.take(remoteAddress, now);
      if (refused) throw new AdmissionRefused(refused);
    } else if (this.#options.maxSessions !== undefined && this.heldCount() >= this.#options.maxSessions) {
      // A returning user holds resources at once: someone idle sleeps for them, if anyone can.
      this.makeRoom();
    }
    const record = stored?.record ?? { userId, sessionId: randomUUID(), createdAt: now, lastActivity: now, messageCount: 0 };
    if (!stored) await deps.store.saveSession(record);
    const session = new UserSession(
      record,
      trimHistory(stored?.entries ?? [], deps.maxHistoryMessages),
      this.#options.createHub(userId, record.sessionId),
      { ...deps, admitFirstTurn: () => this.#admitFirstTurn() },
    );
    // Only a returning user's servers start on connect (its next answer should not wait for them);
    // a session that never ran a turn costs no child until its first one.
    if (returning && session.hub.ownsServers && this.warmSessions(this.#options.maxWarmSessions) < this.#options.maxWarmSessions) {
      session.hub.ready().catch((error: unknown) => deps.log.warn("mcp_warm_failed", { user_id: userId, error }));
    }
    this.#sessions.set(userId, session);
    // Turns of this user on other instances reach this one's sockets (and cancels/approvals go back).
    deps.coordinator
      .join(userId, (message) => session.onCoordinatorMessage(message))
      .catch((error: unknown) => deps.log.warn("cluster_join_failed", { user_id: userId, error }));
    deps.log.info(stored ? "session_restored" : "session_created", {
      user_id: userId,
      session_id: record.sessionId,
      messages: stored?.entries.length ?? 0,
    });
    return session;
  }

  /**
   * A frame for every streaming socket of the user that is not about a turn (files_changed after
   * an HTTP upload): through the live session's fan-out, else straight to other instances.
   */
  broadcast(userId: string, frame: StreamFrame): void {
    const session = this.#sessions.get(userId);
    if (session) session.sockets.broadcast(frame);
    else this.#options.deps.coordinator.publish(userId, { kind: "frame", frame });
  }

  /** The user's usage from the store, for /sessions/<user_id>. */
  async #usage(userId: string): Promise<NonNullable<SessionInfo["usage"]>> {
    const { store, tokensPerDay } = this.#options.deps;
    const { total, today } = await store.usage(userId, utcDay(Date.now()));
    return { ...total, tokens_today: today, tokens_per_day: tokensPerDay ?? null };
  }

  #admitFirstTurn(): string | undefined {
    const max = this.#options.maxSessions;
    const held = this.heldCount();
    if (max === undefined || held < max || this.makeRoom()) return undefined;
    return `Server full: ${held} sessions are in use (limits.max_sessions), every one with a socket or a turn. Try again later`;
  }

  #sleepCandidate(): string | undefined {
    return sleepCandidate(
      [...this.#sessions.values()].map((session) => ({
        userId: session.userId,
        openSockets: session.sockets.size,
        busy: session.busy,
        holdsResources: session.holdsResources,
        lastActivity: session.lastActivity,
      })),
    );
  }

  /** Whether a session could be put to sleep to make room (limits.max_sessions is reached). */
  canMakeRoom(): boolean {
    return this.#sleepCandidate() !== undefined;
  }

  /**
   * Puts the least recently active session without a socket or a turn to sleep: its memory and
   * MCP children are freed, its history stays in the store and comes back when the user
   * reconnects. False when there is none (everyone is here).
   */
  makeRoom(): boolean {
    const userId = this.#sleepCandidate();
    const session = userId === undefined ? undefined : this.#sessions.get(userId);
    if (!userId || !session) return false;
    this.#sessions.delete(userId);
    const { log, coordinator } = this.#options.deps;
    log.info("session_slept", { user_id: userId, session_id: session.sessionId, reason: "limits.max_sessions" });
    void session
      .close()
      .then(() => coordinator.leave(userId))
      .catch((error: unknown) => log.warn("session_sleep_failed", { user_id: userId, error }));
    return true;
  }

  /** Info on a live session, or on one kept only in the store (active: false). */
  async info(userId: string): Promise<SessionInfo | undefined> {
    const live = this.#sessions.get(userId);
    if (live) return { ...live.info(), usage: await this.#usage(userId) };
    const stored = await this.#options.deps.store.load(userId, 0);
    if (!stored) return undefined;
    const { record } = stored;
    return {
      user_id: record.userId,
      active: false,
      session_id: record.sessionId,
      created_at: new Date(record.createdAt).toISOString(),
      last_activity: new Date(record.lastActivity).toISOString(),
      message_count: record.messageCount,
      open_sockets: 0,
      turn_running: false,
      queued_turns: 0,
      mcp_servers: [],
      usage: await this.#usage(userId),
    };
  }

  /** The state of every MCP server of every live session, for the metrics. */
  *mcpServerStates(): Iterable<string> {
    for (const session of this.#sessions.values()) for (const server of session.hub.info()) yield server.state;
  }

  /** Sessions holding MCP processes; counting stops at `atMost` (a connect only asks "fewer than the cap?"). */
  warmSessions(atMost = Infinity): number {
    let warm = 0;
    for (const session of this.#sessions.values()) if (session.hub.warm && ++warm >= atMost) break;
    return warm;
  }

  startSweeper(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      this.sweep(Date.now()).catch((error: unknown) => this.#options.deps.log.error("sweep_failed", { error }));
    }, this.#options.sweepIntervalMs);
    this.#timer.unref();
    // Reaping runs more often than the sweep: at half the MCP idle time, at most every minute.
    this.#reaper = setInterval(
      () => {
        const now = Date.now();
        void this.reapIdleServers(now);
        this.sweepNew(now).catch((error: unknown) => this.#options.deps.log.error("sweep_failed", { error }));
      },
      Math.min(this.#options.mcpIdleMs / 2, this.#options.idleNewMs / 2, 60_000),
    );
    this.#reaper.unref();
  }

  /** Stops the MCP processes of sessions whose tools have been idle; returns those user ids. */
  async reapIdleServers(now: number): Promise<string[]> {
    const reaped: string[] = [];
    await Promise.all(
      [...this.#sessions.values()].map(async (session) => {
        if (session.busy) return;
        if (await session.hub.reapIfIdle(now, this.#options.mcpIdleMs)) {
          reaped.push(session.userId);
          this.#options.deps.log.info("mcp_reaped", { user_id: session.userId, session_id: session.sessionId });
        }
      }),
    );
    return reaped;
  }

  /**
   * Ends sessions with no open socket that have been idle longer than the idle timeout (their
   * memory and MCP children, not their stored history), then deletes stored conversations older
   * than the retention.
   */
  async sweep(now: number): Promise<string[]> {
    const candidates = [...this.#sessions.values()].map((session) => ({
      userId: session.userId,
      openSockets: session.sockets.size,
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
        await this.#options.deps.coordinator.leave(userId);
        this.#options.deps.log.info("session_swept", {
          user_id: userId,
          session_id: session.sessionId,
          idle_ms: now - session.lastActivity,
        });
      }),
    );
    const purged = await this.#options.deps.store.purge(
      now - this.#options.retentionMs,
      new Set([...this.#sessions.keys(), ...this.#opening.keys()]),
    );
    if (purged.length > 0) this.#options.deps.log.info("sessions_purged", { count: purged.length, user_ids: purged });
    return idle;
  }

  /**
   * Ends sessions that never ran a turn, have no socket and were idle past `idleNewMs`, and
   * deletes their stored record: a made-up user id leaves nothing behind.
   */
  async sweepNew(now: number): Promise<string[]> {
    const ended: string[] = [];
    for (const session of [...this.#sessions.values()]) {
      if (session.holdsResources || session.busy || session.sockets.size > 0) continue;
      if (now - session.lastActivity <= this.#options.idleNewMs) continue;
      this.#sessions.delete(session.userId);
      ended.push(session.userId);
      // Its record first, while no new session of this user can be loading it.
      await this.#forgetUnused(session.userId);
      await session.close();
      await this.#options.deps.coordinator.leave(session.userId);
    }
    if (ended.length > 0) this.#options.deps.log.info("new_sessions_swept", { count: ended.length });
    return ended;
  }

  /**
   * Deletes the stored record of a user who never chatted. Read again first: with several
   * instances the user may have chatted elsewhere since this one loaded it, and then it stays.
   */
  async #forgetUnused(userId: string): Promise<void> {
    const { store, coordinator } = this.#options.deps;
    if (this.#opening.has(userId) || coordinator.spansInstances) return;
    const stored = await store.load(userId, 1);
    if (stored && (stored.record.messageCount > 0 || stored.entries.length > 0)) return;
    await store.remove(userId);
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    clearInterval(this.#reaper);
    this.#timer = undefined;
    this.#reaper = undefined;
    await Promise.allSettled(this.#opening.values());
    const sessions = [...this.#sessions.values()];
    this.#sessions.clear();
    await Promise.all(sessions.map((session) => session.close()));
  }
}
