// A session's answers to what its MCP servers ask (the ClientRequests seam of lib/mcp):
// sampling runs the session's model through the loop's own model call (same parameters, caps and
// usage accounting), after a person's approval when the server's policy says so (shown like a
// tool approval); elicitation is a form on the user's streaming sockets. As with
// approvals: the first answer from any socket wins, no answer in time is a decline, a cancel
// (of the turn, or by the server) settles it, and with no streaming socket it is declined at once.
import { randomUUID } from "node:crypto";
import type OpenAI from "openai";
import { ErrorCode, McpError, type CreateMessageResult, type ElicitResult } from "@modelcontextprotocol/sdk/types.js";
import { callModel } from "../agent/model-call.ts";
import type { AgentSettings, ChatMessage, ModelCall } from "../agent/types.ts";
import { samplingRefused, type ClientRequests, type ElicitParams, type SamplingParams } from "../mcp/client-requests.ts";
import { checkElicitationAnswer, elicitationFields } from "../mcp/elicitation.ts";
import type { Logger } from "../log.ts";
import {
  elicitationRequestFrame,
  elicitationResolvedFrame,
  isRecord,
  type ElicitationAction,
  type ElicitationField,
  type ElicitationRequestFrame,
  type ElicitationResolvedFrame,
  type ElicitationValue,
  type Refusal,
} from "../protocol.ts";
import type { ApprovalDesk } from "./approvals.ts";

/** An elicitation's message is cut to this many characters. */
const MAX_QUESTION_CHARS = 2000;
/** An elicitation's URL longer than this fails the request: it is a link for a person, sent to every tab. */
const MAX_URL_CHARS = 4096;

export interface SessionAsksOptions {
  agent: AgentSettings;
  approvals: ApprovalDesk;
  /** `maxTokens` of a sampling request is capped at this (limits.max_sampling_tokens). */
  maxSamplingTokens: number;
  /** A sampling prompt longer than this (characters of text, all messages) is refused, like a chat message. */
  maxMessageChars: number;
  /** How long an elicitation waits for a person (agent.approval_timeout_seconds). */
  timeoutMs: number;
  /** A form larger than this (characters of JSON) fails the server's request (limits.mcp_max_elicitation_chars). */
  maxElicitationChars?: number;
  /** The running turn, if any: frames belong to it. */
  turnId: () => string | undefined;
  /** Whether a streaming socket of the user is open (someone could answer). */
  canAsk: () => boolean;
  /** Takes one message from the user's rate limit; returns why not, or undefined when allowed. */
  takeToken: () => string | undefined;
  /** Why the user's daily token quota allows no model call now (limits.tokens_per_day), or undefined. */
  quotaRefusal: () => Promise<string | undefined>;
  /** Each request to the model a sampling made: usage, metrics and the store, like the loop's. */
  onModelCall: (call: ModelCall) => Promise<void>;
  send: (frame: ElicitationRequestFrame | ElicitationResolvedFrame) => void;
  log: Logger;
  logFields: () => Record<string, unknown>;
}

interface PendingElicitation {
  turnId: string | undefined;
  fields: ElicitationField[];
  resolve: (result: ElicitResult) => void;
  timer: NodeJS.Timeout;
}

export class SessionAsks implements ClientRequests {
  readonly #options: SessionAsksOptions;
  readonly #pending = new Map<string, PendingElicitation>();

  constructor(options: SessionAsksOptions) {
    this.#options = options;
  }

  async sample(server: string, params: SamplingParams, options: { approve: boolean; signal: AbortSignal }): Promise<CreateMessageResult> {
    const { agent, approvals, maxSamplingTokens, log } = this.#options;
    if (!agent.openai) throw samplingRefused("no model is configured on this server (openai.api_key)");
    // A server's model call counts like a message the user sent.
    const limited = this.#options.takeToken();
    if (limited) throw samplingRefused(limited);
    const messages = samplingMessages(params);
    const chars = messages.reduce((sum, message) => sum + textOf(message).length, 0);
    if (chars > this.#options.maxMessageChars)
      throw samplingRefused(
        `the sampling prompt is too long: ${chars} characters, the limit is ${this.#options.maxMessageChars} (limits.max_message_chars)`,
      );
    const overQuota = await this.#options.quotaRefusal();
    if (overQuota) throw samplingRefused(overQuota);
    const maxTokens = Math.min(params.maxTokens, maxSamplingTokens);
    if (options.approve) {
      const decision = await approvals.request(
        this.#options.turnId() ?? "",
        {
          kind: "sampling",
          callId: `sampling_${randomUUID()}`,
          // Not a valid tool name (":"): "always allow" for it can never cover one of the server's tools, nor the reverse.
          name: `${server}:sampling`,
          server,
          tool: "sampling/createMessage",
          arguments: JSON.stringify({
            ...(params.systemPrompt ? { system_prompt: params.systemPrompt } : {}),
            messages: messages
              .filter((message) => message.role !== "system")
              .map((message) => ({ role: message.role, text: textOf(message) })),
            max_tokens: maxTokens,
          }),
        },
        options.signal,
      );
      if (!decision.approved) throw samplingRefused(`sampling was not allowed: ${decision.reason}`);
    }
    const started = Date.now();
    const answer = await callModel(
      agent,
      {
        messages,
        maxTokens,
        ...(params.temperature !== undefined ? { temperature: params.temperature } : {}),
        ...(params.stopSequences?.length ? { stop: params.stopSequences.slice(0, 4) } : {}),
      },
      { signal: options.signal, hooks: { onModelCall: (call) => this.#options.onModelCall(call) }, logFields: this.#options.logFields() },
    );
    const text = typeof answer.message.content === "string" ? answer.message.content : "";
    log.info("mcp_sampling_done", {
      ...this.#options.logFields(),
      server,
      duration_ms: Date.now() - started,
      chars: text.length,
      usage: answer.usage,
    });
    return {
      role: "assistant",
      content: { type: "text", text },
      model: answer.model || agent.model,
      stopReason: answer.finishReason === "length" ? "maxTokens" : "endTurn",
    };
  }

  elicit(server: string, params: ElicitParams, signal: AbortSignal): Promise<ElicitResult> {
    const { log, timeoutMs } = this.#options;
    const isUrl = params.mode === "url";
    const parsed = isUrl
      ? { ok: true as const, fields: [] }
      : elicitationFields("requestedSchema" in params ? params.requestedSchema : undefined, this.#options.maxElicitationChars);
    if (isUrl && "url" in params && params.url.length > MAX_URL_CHARS)
      return Promise.reject(
        new McpError(ErrorCode.InvalidParams, `the elicitation URL is ${params.url.length} characters; at most ${MAX_URL_CHARS}`),
      );
    if (!parsed.ok) {
      log.warn("elicitation_refused", { ...this.#options.logFields(), server, error: parsed.error });
      // The server hears why, rather than a person's decline it never got.
      return Promise.reject(new McpError(ErrorCode.InvalidParams, `the elicitation form was refused: ${parsed.error}`));
    }
    if (!this.#options.canAsk()) {
      // A seed-style socket cannot answer a form: decline at once rather than hang the tool.
      log.info("elicitation", { ...this.#options.logFields(), server, action: "decline", by: "no-client" });
      return Promise.resolve({ action: "decline" });
    }
    const requestId = `elicit_${randomUUID()}`;
    const turnId = this.#options.turnId();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.#settle(requestId, { action: "decline" }, "timeout"), timeoutMs);
      timer.unref();
      this.#pending.set(requestId, { turnId, fields: parsed.fields, resolve, timer });
      signal.addEventListener("abort", () => this.#settle(requestId, { action: "cancel" }, "cancel"), { once: true });
      this.#options.send(
        elicitationRequestFrame({
          request_id: requestId,
          ...(turnId !== undefined ? { turnId } : {}),
          server,
          mode: isUrl ? "url" : "form",
          // A question for a person: a server cannot fill the page with it.
          message: params.message.slice(0, MAX_QUESTION_CHARS),
          ...(isUrl && "url" in params ? { url: params.url } : { fields: parsed.fields }),
          timeout_ms: timeoutMs,
        }),
      );
    });
  }

  /** Whether a question waits here under this id. */
  has(requestId: string): boolean {
    return this.#pending.has(requestId);
  }

  /** A person's answer; why not, when it cannot be taken (unknown id, invalid values). */
  answer(
    requestId: string,
    action: ElicitationAction,
    content: Record<string, ElicitationValue> | undefined,
    socketId: number,
  ): Refusal | undefined {
    const pending = this.#pending.get(requestId);
    if (!pending)
      return {
        code: "no_pending_elicitation",
        error: `no question is waiting under ${requestId} (it was already answered, timed out or cancelled)`,
      };
    if (action !== "accept") {
      this.#settle(requestId, { action }, "user", `socket ${socketId}`);
      return undefined;
    }
    const checked = checkElicitationAnswer(pending.fields, content ?? {});
    if (!checked.ok) return { code: "elicitation_invalid", error: checked.error };
    this.#settle(requestId, { action, content: checked.content }, "user", `socket ${socketId}`);
    return undefined;
  }

  #settle(requestId: string, result: ElicitResult, by: ElicitationResolvedFrame["by"], who: string = by): void {
    const pending = this.#pending.get(requestId);
    if (!pending) return;
    this.#pending.delete(requestId);
    clearTimeout(pending.timer);
    // What was typed is the user's business: the log keeps the decision, not the values.
    this.#options.log.info("elicitation", { ...this.#options.logFields(), request_id: requestId, action: result.action, by: who });
    this.#options.send(elicitationResolvedFrame(requestId, pending.turnId, result.action, by));
    pending.resolve(result);
  }

  /** Cancels everything still waiting (the session is closing). */
  close(): void {
    for (const requestId of [...this.#pending.keys()]) this.#settle(requestId, { action: "cancel" }, "cancel");
  }
}

/** A sampling request's messages as chat messages: text as text, images as image parts, audio as a note. */
export function samplingMessages(params: SamplingParams): ChatMessage[] {
  const out: ChatMessage[] = [];
  if (params.systemPrompt) out.push({ role: "system", content: params.systemPrompt });
  for (const message of params.messages) {
    const blocks: unknown[] = Array.isArray(message.content) ? message.content : [message.content];
    const parts: OpenAI.Chat.Completions.ChatCompletionContentPart[] = [];
    for (const block of blocks) {
      if (!isRecord(block)) continue;
      if (block.type === "text" && typeof block.text === "string") parts.push({ type: "text", text: block.text });
      else if (block.type === "image" && typeof block.data === "string" && typeof block.mimeType === "string")
        parts.push({ type: "image_url", image_url: { url: `data:${block.mimeType};base64,${block.data}` } });
      else if (typeof block.type === "string") parts.push({ type: "text", text: `[${block.type} content is not passed to the model]` });
    }
    if (message.role === "assistant") {
      out.push({ role: "assistant", content: parts.map((part) => (part.type === "text" ? part.text : "")).join("\n") });
    } else {
      const onlyText = parts.every((part) => part.type === "text");
      out.push({ role: "user", content: onlyText ? parts.map((part) => (part.type === "text" ? part.text : "")).join("\n") : parts });
    }
  }
  return out;
}

function textOf(message: ChatMessage): string {
  if (typeof message.content === "string") return message.content;
  if (!Array.isArray(message.content)) return "";
  return message.content.map((part) => ("text" in part && typeof part.text === "string" ? part.text : "[image]")).join("\n");
}
