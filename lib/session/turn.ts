// One running turn: the loop's hooks and its approval callback as methods of one object that owns
// what the turn holds — its abort signal, its deadline (agent.max_turn_seconds), the loss of its
// lease, the frames it sends through the user's sockets, its record in the store, its usage and
// its end. The loop itself (agent.ts runTurn) is handed in: lib/ does not import the top level.
import { OutputBudgetError } from "../agent/output-budget.ts";
import { TurnError } from "../agent/turn-error.ts";
import { AttachmentError } from "../attachments/prepare.ts";
import type {
  ApprovalDecision,
  ChatMessage,
  LoopOptions,
  ModelCall,
  ToolEnd,
  Toolbox,
  ToolProgress,
  ToolStart,
  TurnHooks,
  TurnResult,
} from "../agent/types.ts";
import type { Logger, Redactor } from "../log.ts";
import type { MetricsRecorder } from "../metrics/metrics.ts";
import { addUsage, emptyUsage } from "../model/usage.ts";
import {
  answerFrame,
  cancelledFrame,
  deltaFrame,
  errorFrame,
  filesChangedFrame,
  PROGRESS_INTERVAL_MS,
  reasoningDeltaFrame,
  streamAnswerFrame,
  streamErrorFrame,
  toolEndFrame,
  toolProgressFrame,
  toolStartFrame,
  turnErrorFrame,
  turnErrorText,
  turnStartFrame,
  type AttachmentRef,
  type ErrorCode,
  type ServerFrame,
  type StreamFrame,
  type TurnStatus,
} from "../protocol.ts";
import { StreamRedactor } from "../secrets/redactor.ts";
import type { HistoryEntry } from "../store/history.ts";
import type { SessionRecord, SessionStore } from "../store/store.ts";
import type { ApprovalDesk, ApprovalPolicy } from "./approvals.ts";
import type { TurnLease } from "./coordinator.ts";
import type { Peer, UserSockets } from "./fanout.ts";
import { TurnRecord } from "./turn-record.ts";
import type { UsageMeter } from "./usage-meter.ts";
import { approvalSpan, endApproval, endToolCall, endTurn, toolCallSpan, turnSpan } from "../telemetry/spans.ts";
import { NOOP_SPAN, type TraceCarrier, type TraceScope, type TraceSpan, type Tracing } from "../telemetry/tracer.ts";

/** A chat message waiting in the session's queue, and who sent it. */
export interface QueuedTurn {
  turnId: string;
  peer: Peer;
  text: string;
  clientId?: string;
  /** Files the model reads with the message (lib/attachments). */
  attachments?: AttachmentRef[];
  /** When its frame arrived (epoch ms): the turn's span starts there. */
  receivedAt?: number;
}

/** The tools of the turn: started (`ready`) before the loop runs. */
export interface TurnToolbox extends Toolbox {
  ready(): Promise<void>;
}

/** The agent loop (agent.ts runTurn) over this toolbox, with the turn's signal, hooks and approver. */
export type RunLoop = (toolbox: Toolbox, options: LoopOptions & { signal: AbortSignal }) => Promise<TurnResult>;

export interface TurnDeps {
  userId: string;
  sessionId: string;
  /** The user's sockets: every frame of the turn goes through them. */
  sockets: UserSockets;
  /** The user's turn lease, held for the whole turn: losing it stops the turn. */
  lease: TurnLease;
  store: SessionStore;
  meter: UsageMeter;
  metrics: MetricsRecorder;
  log: Logger;
  /** Removes secrets from text that goes to a client. */
  redactor: Redactor;
  approvals: ApprovalDesk;
  approvalPolicy: ApprovalPolicy;
  /** A turn running longer than this is stopped with an error (agent.max_turn_seconds). */
  maxTurnMs: number;
  /** Whether a call of this tool may change the workspace's files (then the sockets get files_changed). */
  changesWorkspace?: (server: string, tool: string) => boolean;
  /** The session's record as the turn's end writes it. */
  sessionRecord(): SessionRecord;
  /** The turn's entries, once they are in the store (before any answer is sent): the session's history takes them. */
  keep(entries: HistoryEntry[]): void;
  /** The message's attachments as the model's user message (read, capped, shown to every tab); throws a refusal. */
  prepareAttachments?(refs: AttachmentRef[]): Promise<ChatMessage>;
  /** The server's tracer (off: no spans). */
  tracing?: Tracing | undefined;
  /** Model name for the turn's span. */
  model?: string;
}

/**
 * Sends the end of a turn: streaming sockets get the final streaming frame; a seed-style socket
 * that asked gets its one seed frame (the answer, or an error). If the asker has gone, the turn is
 * still in the history for when it comes back.
 */
export function sendTurnEnd(sockets: UserSockets, asker: Peer, final: StreamFrame, seedFrame?: ServerFrame): void {
  sockets.turnFrame(final);
  if (asker.streaming || !sockets.has(asker)) return;
  if (seedFrame) return asker.send(seedFrame);
  if (final.type === "answer") asker.send(answerFrame(final.message, final.user_id, final.session_id));
  else if (final.type === "error") asker.send(errorFrame(final.code, final.error));
}

export class Turn implements TurnHooks {
  readonly turnId: string;
  readonly #queued: QueuedTurn;
  readonly #deps: TurnDeps;
  readonly #abort = new AbortController();
  /** Set when the turn was stopped by a fault rather than by a person (its lease was lost, its deadline passed). */
  #failure: { code: ErrorCode; reason: string } | undefined;
  /** Stopped because the session is closing (shutdown, sweep): the turn was interrupted, not cancelled. */
  #interrupted = false;
  readonly #fields: Record<string, unknown>;
  readonly #record: TurnRecord;
  readonly #usage = emptyUsage();
  /** Each call's server and tool, from its start, for the metrics at its end. */
  readonly #toolNames = new Map<string, { server: string; tool: string }>();
  /** Calls of this turn that may write to the workspace: their end tells every tab to list it again. */
  readonly #writing = new Set<string>();
  /** A secret or server path split between two deltas is redacted whole: the tail waits for the next one. */
  readonly #deltas: StreamRedactor;
  readonly #thoughts: StreamRedactor;
  readonly #progressSentAt = new Map<string, number>();
  /** The turn's span (invoke_agent), its tool calls' spans, and the calls an approval denied. */
  #span: TraceSpan = NOOP_SPAN;
  readonly #toolSpans = new Map<string, TraceSpan>();
  readonly #denied = new Set<string>();

  constructor(queued: QueuedTurn, deps: TurnDeps) {
    this.turnId = queued.turnId;
    this.#queued = queued;
    this.#deps = deps;
    this.#fields = { user_id: deps.userId, session_id: deps.sessionId, turn_id: queued.turnId };
    this.#record = new TurnRecord(deps.store, deps.sessionId, queued.turnId, deps.lease.fence);
    this.#deltas = new StreamRedactor(deps.redactor);
    this.#thoughts = new StreamRedactor(deps.redactor);
  }

  /** Stops the turn at a person's request (cancel, New chat); false when it was already stopping. */
  cancel(): boolean {
    if (this.#abort.signal.aborted) return false;
    this.#abort.abort();
    return true;
  }

  /** Stops the turn because the session is closing: it ends as `interrupted`. */
  interrupt(): void {
    this.#interrupted = true;
    this.#abort.abort();
  }

  /**
   * The turn from its start frame to its end frame: the user's message is stored, the tools made
   * ready, the loop run; then the turn's messages are stored and the answer (or the error, or
   * `cancelled`) sent. Never throws: every failure ends as a frame. Resolves with the status.
   */
  async run(toolbox: TurnToolbox, loop: RunLoop): Promise<TurnStatus> {
    const { lease, log, sockets, redactor, maxTurnMs, userId, sessionId } = this.#deps;
    const { turnId, text, clientId, peer, attachments } = this.#queued;
    const onLost = () => this.#stop("server_unavailable", `the turn was stopped: ${(lease.lost.reason as Error).message}`);
    // Removed when the turn ends: on one instance every lease shares one never-aborted signal,
    // which would otherwise keep every turn that ever ran alive.
    lease.lost.addEventListener("abort", onLost, { once: true });
    const started = Date.now();
    const deadline = setTimeout(
      () => this.#stop("turn_timeout", `the turn was stopped: it ran longer than ${maxTurnMs / 1000} s (agent.max_turn_seconds)`),
      maxTurnMs,
    );
    deadline.unref();
    const tracing = this.#deps.tracing;
    if (tracing?.enabled) {
      this.#span = turnSpan(tracing, {
        userId,
        sessionId,
        turnId,
        model: this.#deps.model ?? "",
        input: () => text,
        ...(this.#queued.receivedAt !== undefined ? { startTime: this.#queued.receivedAt } : {}),
      });
      // The frames this turn sends to the user's other instances carry its context.
      sockets.trace = this.#span.carrier();
    }
    log.info("turn_start", { ...this.#fields, chars: text.length });
    sockets.turnFrame(turnStartFrame(turnId, text, clientId));
    let status: TurnStatus;
    try {
      // Attachments are read (and refused) before anything of the turn is stored.
      if (attachments && !this.#deps.prepareAttachments) throw new Error("this server takes no attachments");
      const attached = attachments ? await this.#deps.prepareAttachments?.(attachments) : undefined;
      await this.#record.append([{ role: "user", content: text }, ...(attached ? [attached] : [])]);
      await toolbox.ready();
      this.#abort.signal.throwIfAborted();
      const result = await loop(toolbox, {
        signal: this.#abort.signal,
        hooks: this,
        logFields: this.#fields,
        approve: (call, signal) => this.approve(call, signal),
        ...(attached ? { attachments: attached } : {}),
      });
      await this.#remember(result.messages, "ok");
      status = "ok";
      this.#flushDeltas();
      sendTurnEnd(
        sockets,
        peer,
        streamAnswerFrame(turnId, result.answer, userId, sessionId, this.#usage, result.finishReason),
        answerFrame(result.text, userId, sessionId),
      );
    } catch (error) {
      const cancelled = this.#abort.signal.aborted && this.#failure === undefined;
      status = cancelled ? (this.#interrupted ? "interrupted" : "cancelled") : "error";
      let code: ErrorCode =
        this.#failure?.code ?? budgetCode(error) ?? (error instanceof AttachmentError ? error.code : undefined) ?? "turn_failed";
      let reason = redactor.redact(this.#failure?.reason ?? (error instanceof Error ? error.message : String(error)));
      try {
        await this.#remember(error instanceof TurnError ? error.messages : [{ role: "user", content: text }], status);
      } catch (storeError) {
        // The turn's end could not be written: say so; what was stored before stays.
        status = "error";
        code = "server_unavailable";
        reason = redactor.redact(`the conversation could not be saved (${(storeError as Error).message})`);
      }
      this.#flushDeltas();
      if (status === "cancelled" || status === "interrupted") {
        sendTurnEnd(sockets, peer, cancelledFrame(turnId), turnErrorFrame("turn_cancelled", "the turn was cancelled"));
      } else {
        sendTurnEnd(sockets, peer, streamErrorFrame(code, turnErrorText(reason), { turnId }));
        log.warn("turn_error", { ...this.#fields, code, error: reason });
      }
    } finally {
      sockets.trace = undefined;
      lease.lost.removeEventListener("abort", onLost);
      clearTimeout(deadline);
      // Nothing of this turn may wait on after it: a call the model named twice, a call left behind by a failure.
      this.#deps.approvals.settleTurn(turnId, "denied: the turn ended");
    }
    const durationMs = Date.now() - started;
    // A call the turn left behind (its end never came): failed with the turn.
    if (tracing) for (const span of this.#toolSpans.values()) endToolCall(tracing, span, "error");
    endTurn(this.#span, status, status === "error" ? { code: "turn_error" } : undefined);
    this.#deps.metrics.turnEnded(status, durationMs / 1000);
    log.info("turn_end", { ...this.#fields, status, duration_ms: durationMs, usage: this.#usage });
    return status;
  }

  /** The approval callback of the loop: calls the policy covers wait for a person. */
  approve(call: ToolStart, signal?: AbortSignal): Promise<ApprovalDecision> {
    if (!this.#deps.approvalPolicy.needsApproval(call.server, call.tool)) return Promise.resolve({ approved: true });
    const tracing = this.#deps.tracing;
    if (!tracing?.enabled) return this.#deps.approvals.request(this.turnId, call, signal);
    const span = approvalSpan(tracing, this.#toolSpans.get(call.callId) ?? this.#span, {
      tool: call.name,
      server: call.server,
      callId: call.callId,
    });
    return this.#deps.approvals.request(this.turnId, call, signal).then(
      (decision) => {
        if (!decision.approved) this.#denied.add(call.callId);
        endApproval(span, decision.approved ? "approved" : "denied");
        return decision;
      },
      (error: unknown) => {
        endApproval(span, "cancelled");
        throw error;
      },
    );
  }

  /** Where the loop's model calls put their spans: under this turn's. */
  get trace(): TraceScope | undefined {
    const tracing = this.#deps.tracing;
    return tracing?.enabled && this.#span.recording ? { tracing, parent: this.#span } : undefined;
  }

  traceOf(callId: string): TraceCarrier | undefined {
    return this.#toolSpans.get(callId)?.carrier();
  }

  onTextDelta(delta: string): void {
    this.#flushThoughts();
    const safe = this.#deltas.push(delta);
    if (safe) this.#deps.sockets.turnFrame(deltaFrame(this.turnId, safe));
  }

  /** Reasoning is streamed apart from the answer, redacted the same way. */
  onReasoningDelta(delta: string): void {
    const safe = this.#thoughts.push(delta);
    if (safe) this.#deps.sockets.turnFrame(reasoningDeltaFrame(this.turnId, safe));
  }

  #flushThoughts(): void {
    const rest = this.#thoughts.flush();
    if (rest) this.#deps.sockets.turnFrame(reasoningDeltaFrame(this.turnId, rest));
  }

  /** A request to the model of this turn (the loop's, or a sampling request made while it runs). */
  async onModelCall(call: ModelCall): Promise<void> {
    if (call.usage.model_calls > 0) addUsage(this.#usage, call.usage);
    await this.#deps.meter.record(call, { sessionId: this.#deps.sessionId, turnId: this.turnId }, this.#fields);
  }

  onToolStart(call: ToolStart): void {
    this.#toolNames.set(call.callId, { server: call.server, tool: call.tool });
    const tracing = this.#deps.tracing;
    if (tracing?.enabled && this.#span.recording)
      this.#toolSpans.set(
        call.callId,
        toolCallSpan(tracing, this.#span, { tool: call.name, server: call.server, callId: call.callId, args: () => call.arguments }),
      );
    this.#record.toolStarted(call);
    if (this.#deps.changesWorkspace?.(call.server, call.tool)) this.#writing.add(call.callId);
    this.#deps.sockets.turnFrame(toolStartFrame(this.turnId, call));
  }

  onToolEnd(call: ToolEnd): void {
    const { sockets, redactor, metrics, userId } = this.#deps;
    const names = this.#toolNames.get(call.callId);
    metrics.toolCall(names?.server ?? "", names?.tool ?? "", call.ok ? "ok" : "error");
    const span = this.#toolSpans.get(call.callId);
    const tracing = this.#deps.tracing;
    if (span && tracing) {
      this.#toolSpans.delete(call.callId);
      endToolCall(tracing, span, call.ok ? "ok" : this.#denied.has(call.callId) ? "denied" : "error", () => call.result);
    }
    this.#record.toolEnded(call);
    sockets.turnFrame(toolEndFrame(this.turnId, call.callId, call.ok, redactor.redact(call.result), call.durationMs, call.images));
    if (this.#writing.delete(call.callId))
      sockets.broadcast(filesChangedFrame(userId, "tool", [], { turnId: this.turnId, callId: call.callId }));
  }

  onToolProgress(callId: string, progress: ToolProgress): void {
    // A server may report progress thousands of times a second: the sockets get at most one
    // update per PROGRESS_INTERVAL_MS per call (the last one before tool_end may be skipped).
    const now = Date.now();
    if (now - (this.#progressSentAt.get(callId) ?? 0) < PROGRESS_INTERVAL_MS) return;
    this.#progressSentAt.set(callId, now);
    this.#deps.sockets.turnFrame(toolProgressFrame(this.turnId, callId, progress));
  }

  onStep(messages: ChatMessage[]): Promise<void> {
    return this.#record.append(messages);
  }

  /** Stopped by a fault: the turn ends with this error rather than as cancelled. */
  #stop(code: ErrorCode, reason: string): void {
    this.#failure = { code, reason };
    this.#abort.abort();
  }

  /** Writes what the store does not have of the turn yet, then hands its entries to the session, before any answer is sent. */
  async #remember(messages: ChatMessage[], status: TurnStatus): Promise<void> {
    const entries = await this.#record.end(messages, status, { ...this.#deps.sessionRecord(), lastActivity: Date.now() });
    this.#deps.keep(entries);
  }

  #flushDeltas(): void {
    this.#flushThoughts();
    const rest = this.#deltas.flush();
    if (rest) this.#deps.sockets.turnFrame(deltaFrame(this.turnId, rest));
  }
}

/** The code of an output budget that stopped the turn (lib/agent/output-budget.ts), if one did. */
function budgetCode(error: unknown): ErrorCode | undefined {
  const cause = error instanceof TurnError ? error.cause : error;
  return cause instanceof OutputBudgetError ? cause.code : undefined;
}
