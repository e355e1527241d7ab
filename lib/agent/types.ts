// The vocabulary of a turn, shared by the loop (agent.ts), the model call, the MCP hub, the
// approval desk, the store and the running turn: messages, tools, hooks, settings. Types only.
import type OpenAI from "openai";
import type { TokenCounter } from "../model/tokens.ts";
import type { TokenUsage } from "../protocol.ts";
import type { TraceCarrier, TraceScope } from "../telemetry/tracer.ts";

export type ChatMessage = OpenAI.Chat.Completions.ChatCompletionMessageParam;
export type AssistantMessage = OpenAI.Chat.Completions.ChatCompletionAssistantMessageParam;
/** An assistant message as we keep it: with the model's reasoning, which is not sent back unless asked (openai.send_reasoning). */
export type KeptAssistantMessage = AssistantMessage & { reasoning_content?: string };
export type ToolCall = OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall;
export type ToolDefinition = OpenAI.Chat.Completions.ChatCompletionFunctionTool;

/** One model-visible tool name and the MCP tool it means. */
export interface ToolRoute {
  server: string;
  tool: string;
}

/** The tools the model is offered now, and where each of their names leads. */
export interface ToolCatalog {
  tools: ToolDefinition[];
  routes: Map<string, ToolRoute>;
}

/** Where the loop reports what it does (the server's Logger is one). */
export interface TurnLog {
  debug(event: string, fields?: Record<string, unknown>): void;
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
}

/** An image a tool returned: base64 data as the MCP server sent it. */
export interface ToolImage {
  mimeType: string;
  /** Base64, without a data: prefix. */
  data: string;
}

/** What a tool call gave back: the text the model sees, and whether it failed. */
export interface ToolOutcome {
  ok: boolean;
  text: string;
  /** Images the tool returned: the model gets them as image parts of a user message after the step's tool results. */
  images?: ToolImage[];
}

/** A progress notification of a running tool call (MCP `notifications/progress`). */
export interface ToolProgress {
  progress: number;
  total?: number;
  message?: string;
}

/** What a tool call may report while it runs. */
export interface ToolCallOptions {
  signal?: AbortSignal;
  onProgress?(progress: ToolProgress): void;
  /** The W3C context of the call's span: the MCP server gets it in `_meta` (SEP-414). */
  trace?: TraceCarrier | undefined;
}

/** The tools of a session, as the agent needs them. */
export interface Toolbox {
  catalog(): ToolCatalog;
  /** Waits for tool lists being refreshed (a server said its tools changed) before the next catalog(). */
  prepare?(): Promise<void>;
  callTool(route: ToolRoute, args: Record<string, unknown>, options?: ToolCallOptions): Promise<ToolOutcome>;
}

export interface ToolStart {
  callId: string;
  name: string;
  server: string;
  tool: string;
  arguments: string;
}

export interface ToolEnd {
  callId: string;
  ok: boolean;
  result: string;
  durationMs: number;
  images?: ToolImage[];
}

/** A person's verdict on a tool call that needs approval; `reason` reaches the model on a denial. */
export type ApprovalDecision = { approved: true } | { approved: false; reason: string };

/** Asks whether a call may run (undefined: every call may). */
export type Approver = (call: ToolStart, signal?: AbortSignal) => Promise<ApprovalDecision>;

/** One model call: what it cost and how long it took. */
export interface ModelCall {
  usage: TokenUsage;
  durationMs: number;
  ok: boolean;
}

/** What one model call reports while it runs (lib/agent/model-call.ts). */
export interface ModelCallHooks {
  /** Where each request's `chat <model>` span goes (under the turn's span); none: not traced. */
  readonly trace?: TraceScope | undefined;
  /** After each request to the model, failed ones too (awaited: its usage is written to the store before going on). */
  onModelCall?(call: ModelCall): Promise<void> | void;
  onTextDelta?(text: string): void;
  /** The model's reasoning (`reasoning_content`, `reasoning`, `<think>`), streamed apart from the answer. */
  onReasoningDelta?(text: string): void;
}

/** Live events of a turn, for streaming sockets and logs. */
export interface TurnHooks extends ModelCallHooks {
  onToolStart?(call: ToolStart): void;
  onToolEnd?(call: ToolEnd): void;
  onToolProgress?(callId: string, progress: ToolProgress): void;
  /** The W3C context of a tool call's span (made by onToolStart), for its MCP server. */
  traceOf?(callId: string): TraceCarrier | undefined;
  /** A complete step (an assistant message with tool calls and all their results) was added. */
  onStep?(messages: ChatMessage[]): Promise<void>;
}

/** How a turn is run: its signal, where it reports, and who approves its tool calls. */
export interface LoopOptions {
  signal?: AbortSignal;
  hooks?: TurnHooks;
  logFields?: Record<string, unknown>;
  approve?: Approver;
  /** The user message of the turn's attachments (lib/attachments), right after the text. */
  attachments?: ChatMessage;
}

export type ModelRequestParams = Partial<
  Pick<OpenAI.Chat.Completions.ChatCompletionCreateParamsStreaming, "max_tokens" | "max_completion_tokens" | "reasoning_effort" | "user">
>;

/** What every model call needs: the endpoint, the model, its parameters, its deadlines and caps. */
export interface ModelSettings {
  /** Undefined when no API key is configured: every turn then fails with a how-to message. */
  openai: OpenAI | undefined;
  model: string;
  log: TurnLog;
  /**
   * What the endpoint taught us, for every later request of every session (they share it):
   * `windowTokens`, the window it named when it refused a request as too long (smaller than
   * configured), so requests are fitted to it at once instead of being refused first;
   * `noStreamOptions`, set when it rejected `stream_options` (older Azure API versions, some
   * local servers): usage is then counted here.
   */
  learned: { windowTokens?: number; noStreamOptions?: boolean };
  tokens: TokenCounter;
  /** Request parameters from the config: max_tokens or max_completion_tokens, reasoning_effort, user. */
  requestParams: ModelRequestParams;
  /** A streamed answer that sends nothing (keep-alive comments count as nothing) for this long fails. */
  streamIdleMs: number;
  /** Bounds one whole model call, streamed answer included (the SDK's own timeout stops at the headers). */
  requestTimeoutMs: number;
  /** A model answer's text plus its tool calls' names and arguments: text past it is cut with a note, a tool call past it fails the call. */
  maxAnswerChars: number;
  /** Tool calls one answer may make; more fail the call (limits.max_parallel_tool_calls). */
  maxParallelToolCalls: number;
  /** A model error text longer than this is cut, with a note. */
  maxErrorChars: number;
  /** Reasoning kept in history goes back to the model (`reasoning_content`) only when this is set (openai.send_reasoning). */
  sendReasoning: boolean;
}

export interface AgentSettings extends ModelSettings {
  instruction: string;
  maxIterations: number;
  /** Tokens a request may use: the context window minus `replyReserve`. */
  contextBudget: number;
  replyReserve: number;
  /** What the model may write in one turn, all its answers together (limits.max_turn_output_chars). */
  maxTurnOutputChars: number;
  /** Shortened copies of long tool results, per original message, so each is made and counted once. */
  shortened: WeakMap<ChatMessage, ChatMessage>;
}

export interface TurnResult {
  /** The last assistant message's text. */
  answer: string;
  /** All the assistant text of the turn (also what the model wrote before its tool calls), joined with "\n". */
  text: string;
  usage: TokenUsage;
  /** Every message the turn added: the user's, assistant messages, tool results. */
  messages: ChatMessage[];
  /** How the last model call ended when it was not whole (`length`, `content_filter`); undefined when it was. */
  finishReason?: string;
}
