// Per-user sessions: a plain Map of UserSession, each owning its MCP hub, its history and a
// turn queue that runs one turn at a time. Sessions outlive sockets; an idle sweep ends them.
import { randomUUID } from "node:crypto";
import { runTurn } from "./agent.ts";
import { AttachmentError, prepareAttachments, type AttachmentSettings } from "./lib/attachments/prepare.ts";
import type { AgentSettings, ChatMessage } from "./lib/agent/types.ts";
import { historyItems, historyPage, trimHistory, type HistoryEntry } from "./lib/store/history.ts";
import { fullBucket, takeToken, type Bucket, type RateLimit } from "./lib/session/rate-limit.ts";
import type { SessionRecord, SessionStore } from "./lib/store/store.ts";
import { ApprovalDesk, type ApprovalPolicy } from "./lib/session/approvals.ts";
import { SessionAsks } from "./lib/session/asks.ts";
import type { Coordinator, CoordinatorMessage, TurnLease } from "./lib/session/coordinator.ts";
import { UserSockets, type Peer } from "./lib/session/fanout.ts";
import { AdmissionRefused, sleepCandidate, type NewSessionLimiter } from "./lib/session/admission.ts";
import { sendTurnEnd, Turn, type QueuedTurn } from "./lib/session/turn.ts";
import { UsageMeter } from "./lib/session/usage-meter.ts";
import { publicReason } from "./lib/session/public-reason.ts";
import type { Logger, Redactor } from "./lib/log.ts";
import type { McpHub } from "./lib/mcp/hub.ts";
import { ServersWatch } from "./lib/mcp/server-state.ts";
import type { ServerActions } from "./lib/mcp/server-actions.ts";
import type { Workspaces } from "./lib/workspace/workspaces.ts";
import type { ResetOutcome } from "./lib/socket/dispatch.ts";
import type { MetricsRecorder } from "./lib/metrics/metrics.ts";
import { utcDay } from "./lib/model/usage.ts";
import { approvalAnswerSpan, sessionStartSpan } from "./lib/telemetry/spans.ts";
import { parseCarrier, type TraceCarrier, type Tracing } from "./lib/telemetry/tracer.ts";
import {
  attachmentsFrame,
  cancelledFrame,
  serversFrame,
  filesChangedFrame,
  queuedFrame,
  resetFrame,
  streamErrorFrame,
  turnErrorFrame,
  turnErrorText,
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
  readonly #queue: QueuedTurn[] = [];
  #running: Turn | undefined;
  #pumping: Promise<void> | undefined;
  #closed = false;
  #resetting = false;
  /** A turn waiting for the user's turn lease: a cancel or close stops the wait. */
  #waiting: AbortController | undefined;
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
      turnId: () => this.#running?.turnId,
      canAsk: () => this.sockets.anyStreaming,
      takeToken: () => this.#takeToken(Date.now()),
      quotaRefusal: async () => (await this.#meter.refusal())?.error,
      // Part of the running turn's usage when there is one; else the user's, under no turn.
      onModelCall: (call) =>
        this.#running
          ? this.#running.onModelCall(call)
          : this.#meter.record(call, { sessionId: this.#sessionId, turnId: "" }, { user_id: this.userId, session_id: this.#sessionId }),
      // Part of the running turn when there is one (a page reloaded mid-turn sees the form again).
      send: (frame) => (this.#running ? this.sockets.turnFrame(frame) : this.sockets.broadcast(frame)),
      log: deps.log,
      logFields: () => ({ user_id: this.userId, session_id: this.#sessionId }),
    });
    hub.attach(this.#asks);
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

  /**
   * Starts over: a new session_id and an empty history (stored and in memory), and with
   * `clearWorkspace` an empty workspace folder. The running turn is cancelled and queued ones
   * dropped; "always allow" answers are forgotten; the MCP servers stay. The history changes
   * only once the store has let go of the old one, so a store failure changes nothing; a
   * workspace that cannot be emptied is reported as such. Every socket of the user is told
   * exactly what was done, here and on other instances.
   */
  async reset(clearWorkspace: boolean): Promise<ResetOutcome> {
    const { store, workspaces, log, redactor } = this.#deps;
    // Messages sent from now on belong to the new conversation: they wait until it exists.
    this.#resetting = true;
    let outcome: ResetOutcome;
    try {
      const dropped = this.#queue.length;
      const stopped = this.#running !== undefined || this.#waiting !== undefined;
      this.#queue.length = 0;
      this.#waiting?.abort();
      this.#running?.cancel();
      // Let the cancelled turn finish writing under the old session_id before it is deleted.
      await this.#pumping;
      const now = Date.now();
      const fresh: SessionRecord = { userId: this.userId, sessionId: randomUUID(), createdAt: now, lastActivity: now, messageCount: 0 };
      try {
        await store.remove(this.userId);
      } catch (error) {
        const reason = redactor.redact(publicReason(error));
        log.error("session_reset_failed", { user_id: this.userId, session_id: this.#sessionId, error: reason });
        const undone = [
          stopped ? "the running answer was stopped" : "",
          dropped > 0 ? `${dropped} waiting message(s) were dropped` : "",
        ].filter(Boolean);
        outcome = {
          ok: false,
          code: "reset_failed",
          error: `New chat failed: the conversation could not be deleted (${reason}). ${
            undone.length === 0 ? "Nothing was changed" : `The conversation is unchanged, but ${undone.join(" and ")}`
          }`,
        };
        this.sockets.broadcast(streamErrorFrame(outcome.code, outcome.error));
        return outcome;
      }
      // The old conversation is gone from the store: from here on the reset has happened.
      this.#entries = [];
      this.#itemsCache = undefined;
      this.#adopt(fresh, []);
      this.lastActivity = now;
      this.#approvals.forgetAlwaysAllowed();
      const notes: string[] = [];
      // If the new record cannot be written now, the first turn's end writes it.
      await store.saveSession(this.record()).catch((error: unknown) => {
        log.warn("session_reset_save_failed", { user_id: this.userId, session_id: this.#sessionId, error: publicReason(error) });
      });
      let workspaceCleared = false;
      if (clearWorkspace) {
        try {
          await workspaces.clear(this.userId);
          workspaceCleared = true;
        } catch (error) {
          notes.push(
            `the workspace files could not all be deleted (${redactor.redact(publicReason(error, workspaces.dirFor(this.userId)))})`,
          );
        }
      }
      log.info("session_reset", { user_id: this.userId, session_id: this.#sessionId, workspace_cleared: workspaceCleared, notes });
      outcome = { ok: true, workspaceCleared, notes };
    } finally {
      this.#resetting = false;
      if (this.#queue.length > 0) void this.#pump();
    }
    this.sockets.broadcast(resetFrame(this.userId, this.#sessionId, outcome.workspaceCleared));
    if (outcome.notes.length > 0) {
      this.sockets.broadcast(
        streamErrorFrame("reset_incomplete", `New chat started (the conversation was cleared), but ${outcome.notes.join("; ")}`),
      );
    }
    return outcome;
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
    return this.#running !== undefined || this.#queue.length > 0;
  }

  attach(peer: Peer): void {
    this.lastActivity = Date.now();
    if (peer.streaming) peer.send(serversFrame(this.hub.statuses()));
    // A page reloaded mid-turn picks the turn up where it is, then gets the live frames...
    this.sockets.add(peer);
    if (!peer.streaming) return;
    // ...and sees the messages still waiting behind it.
    this.#queue.forEach((waiting, index) =>
      peer.send(queuedFrame(waiting.turnId, waiting.text, index + (this.#running ? 1 : 0), waiting.clientId)),
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
    if (!this.#deps.coordinator.spansInstances || this.#pumping) return;
    const fresh = await this.#deps.store.load(this.userId, this.#deps.maxHistoryMessages);
    if (!fresh || this.#pumping) return;
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
    const { maxQueuedTurns } = this.#deps;
    const limited = this.#takeToken(now);
    if (limited) return { ok: false, code: "rate_limited", error: limited };
    // The first turn makes a session hold resources: it must fit under limits.max_sessions.
    const full = this.holdsResources || this.#running ? undefined : this.#deps.admitFirstTurn?.();
    if (full) return { ok: false, code: "too_many_sessions", error: full };
    if (this.#queue.length >= maxQueuedTurns) {
      return {
        ok: false,
        code: "queue_full",
        error: `Too many messages waiting: ${this.#queue.length} are queued behind the running turn (limits.max_queued_turns). Wait for an answer, then send again`,
      };
    }
    const turnId = randomUUID();
    this.lastActivity = now;
    this.messageCount++;
    const position = this.#queue.length + (this.#running ? 1 : 0);
    this.#queue.push({
      turnId,
      peer,
      text,
      receivedAt: now,
      ...(clientId !== undefined ? { clientId } : {}),
      ...(attachments && attachments.length > 0 ? { attachments } : {}),
    });
    this.sockets.broadcast(queuedFrame(turnId, text, position, clientId));
    void this.#pump();
    return { ok: true, turnId };
  }

  /** Stops the running turn, if any (here or on another instance); queued turns then run. */
  cancel(): boolean {
    // The turn in progress, here or (known from its frames) on another instance.
    const turnId = this.#running?.turnId ?? this.sockets.turnInProgress;
    if (turnId !== undefined) this.#deps.coordinator.publish(this.userId, { kind: "cancel", turn_id: turnId });
    return this.#running?.cancel() ?? false;
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
          if (!this.#pumping) this.#adopt({ ...this.record(), sessionId: message.frame.session_id, messageCount: 0 }, []);
        }
        this.sockets.fromElsewhere(message.frame);
        return;
      case "cancel":
        // Only the turn it names: a cancel captured for another turn stops nothing.
        if (this.#running?.turnId === message.turn_id) this.#running.cancel();
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

  #pump(): Promise<void> {
    this.#pumping ??= (async () => {
      try {
        while (!this.#closed && !this.#resetting) {
          const next = this.#queue.shift();
          if (!next) break;
          await this.#runOne(next);
        }
      } finally {
        this.#pumping = undefined;
      }
    })();
    return this.#pumping;
  }

  /**
   * Runs one queued turn: first the user's turn lease (waiting while another instance runs a turn
   * of this user), and the history as the store has it when others may have grown it.
   */
  async #runOne(queued: QueuedTurn): Promise<void> {
    const { coordinator, store } = this.#deps;
    if (!(await this.#withinQuota(queued))) return;
    const abort = new AbortController();
    this.#waiting = abort;
    let lease: TurnLease | undefined;
    try {
      lease = await coordinator.acquire(this.userId, abort.signal);
      if (lease.historyStale) await this.#reload(lease, store);
    } catch (error) {
      // Held but not used (the history could not be read): let it go, or its renewals keep it forever.
      await lease?.release();
      const cancelled = abort.signal.aborted;
      const reason = this.#deps.redactor.redact((error as Error).message);
      this.#deps.log.warn("turn_not_started", { user_id: this.userId, turn_id: queued.turnId, error: reason });
      const frame = cancelled
        ? cancelledFrame(queued.turnId)
        : streamErrorFrame("server_unavailable", turnErrorText(reason), { turnId: queued.turnId });
      sendTurnEnd(this.sockets, queued.peer, frame, cancelled ? turnErrorFrame("turn_cancelled", "the turn was cancelled") : undefined);
      return;
    } finally {
      this.#waiting = undefined;
    }
    try {
      await this.#runTurn(queued, lease);
    } finally {
      await lease.release();
    }
  }

  /**
   * The daily token quota, checked when a turn is about to start (earlier turns of the queue have
   * been counted by then). It is read from the store, so it holds across restarts and instances.
   */
  async #withinQuota(queued: QueuedTurn): Promise<boolean> {
    const refused = await this.#meter.refusal();
    if (refused === undefined) return true;
    this.#deps.log.warn("turn_refused", { user_id: this.userId, turn_id: queued.turnId, code: refused.code, reason: refused.error });
    sendTurnEnd(this.sockets, queued.peer, streamErrorFrame(refused.code, refused.error, { turnId: queued.turnId }));
    return false;
  }

  /** Reads the history another instance may have grown, holding the lease. */
  async #reload(lease: TurnLease, store: SessionStore): Promise<void> {
    // Holding the lease, no other instance runs a turn of this user: frames kept from one that
    // never ended (its instance died) are stale and must not be replayed any more.
    this.sockets.forgetTurn();
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

  /** Runs one turn holding the user's lease: a Turn owns everything of it; the loop is agent.ts's. */
  async #runTurn(queued: QueuedTurn, lease: TurnLease): Promise<void> {
    const { agent, store, metrics, log, redactor, approvalPolicy, maxTurnMs, changesWorkspace } = this.#deps;
    const sessionId = this.#sessionId;
    const turn = new Turn(queued, {
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
    this.#running = turn;
    try {
      await turn.run(this.hub, (toolbox, options) => runTurn(agent, toolbox, this.history, queued.text, options));
    } finally {
      this.#running = undefined;
      this.lastActivity = Date.now();
    }
  }

  /** A turn's attachments as the model's user message; their summaries go to every tab, inline files were written. */
  async #prepareAttachments(turnId: string, refs: AttachmentRef[]): Promise<ChatMessage> {
    const settings = this.#deps.attachments;
    if (!settings) throw new AttachmentError("this server takes no attachments");
    const root = this.#deps.workspaces.ensure(this.userId);
    const prepared = await prepareAttachments(refs, settings, { root, countTokens: (text) => this.#deps.agent.tokens.text(text) });
    this.sockets.turnFrame(attachmentsFrame(turnId, prepared.infos));
    if (prepared.written.length > 0) this.sockets.broadcast(filesChangedFrame(this.userId, "upload", prepared.written));
    return prepared.message;
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
      turn_running: this.#running !== undefined,
      queued_turns: this.#queue.length,
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
    this.#queue.length = 0;
    this.#waiting?.abort();
    this.#running?.interrupt();
    this.#approvals.close();
    this.#asks.close();
    await Promise.all([this.#pumping, this.hub.close()]);
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
