// The agent's settings from the config: one OpenAI client (any OpenAI-compatible endpoint),
// the request parameters mcp-agent passes, and the token budget of a request.
import OpenAI from "openai";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { contextBudget } from "../model/context.ts";
import { TokenCounter } from "../model/tokens.ts";
import { modelFetch } from "./output-budget.ts";
import type { AgentSettings, ModelRequestParams } from "./types.ts";

/** Models that take `max_completion_tokens` and `reasoning_effort`, as mcp-agent tells them apart. */
export function isReasoningModel(model: string): boolean {
  return /^(o1|o3|o4|gpt-5)/.test(model);
}

/** A cap on the answer's tokens as this model takes it: max_completion_tokens for reasoning models, else max_tokens. */
export function tokenLimitParam(model: string, tokens: number): Pick<ModelRequestParams, "max_tokens" | "max_completion_tokens"> {
  return isReasoningModel(model) ? { max_completion_tokens: tokens } : { max_tokens: tokens };
}

/** What mcp-agent sends besides the messages: max_tokens (max_completion_tokens and reasoning_effort for reasoning models) and user. */
export function requestParamsFrom(openai: Config["openai"]): ModelRequestParams {
  const reasoning = isReasoningModel(openai.default_model);
  return {
    ...(openai.max_tokens !== undefined ? tokenLimitParam(openai.default_model, openai.max_tokens) : {}),
    ...(reasoning ? { reasoning_effort: openai.reasoning_effort } : {}),
    ...(openai.user !== undefined ? { user: openai.user } : {}),
  };
}

export function agentSettingsFrom(config: Config, log: Logger): AgentSettings {
  const { openai } = config;
  const replyReserve = openai.max_tokens ?? config.agent.reply_reserve_tokens;
  return {
    // Without a key every turn fails with a message saying how to set one.
    openai: openai.api_key
      ? new OpenAI({
          apiKey: openai.api_key,
          baseURL: openai.base_url,
          timeout: openai.request_timeout_seconds * 1000,
          maxRetries: openai.max_retries,
          defaultHeaders: openai.default_headers,
          // Answers sent whole (JSON) are read by the SDK at once: the cap must come before.
          fetch: modelFetch(config.limits.max_answer_bytes),
        })
      : undefined,
    model: openai.default_model,
    instruction: config.agent.instruction,
    maxIterations: config.agent.max_iterations,
    streamIdleMs: openai.stream_idle_timeout_seconds * 1000,
    requestTimeoutMs: openai.request_timeout_seconds * 1000,
    maxAnswerChars: config.limits.max_answer_chars,
    maxErrorChars: config.limits.max_error_chars,
    maxParallelToolCalls: config.limits.max_parallel_tool_calls,
    maxTurnOutputChars: config.limits.max_turn_output_chars,
    log,
    contextBudget: contextBudget({ model: openai.default_model, maxContextTokens: config.agent.max_context_tokens, replyReserve }),
    replyReserve,
    learned: {},
    tokens: new TokenCounter(openai.default_model),
    shortened: new WeakMap(),
    requestParams: requestParamsFrom(openai),
  };
}
