// The model side of the agent: one OpenAI client (any OpenAI-compatible endpoint) from the config.
import OpenAI from "openai";
import type { AgentSettings } from "../../agent.ts";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";

export function agentSettingsFrom(config: Config, log: Logger): AgentSettings {
  const { openai } = config;
  return {
    // Without a key every turn fails with a message saying how to set one.
    openai: openai.api_key
      ? new OpenAI({
          apiKey: openai.api_key,
          baseURL: openai.base_url,
          timeout: openai.request_timeout_seconds * 1000,
          maxRetries: openai.max_retries,
        })
      : undefined,
    model: openai.default_model,
    instruction: config.agent.instruction,
    maxIterations: config.agent.max_iterations,
    streamIdleMs: openai.stream_idle_timeout_seconds * 1000,
    requestTimeoutMs: openai.request_timeout_seconds * 1000,
    maxAnswerChars: config.limits.max_answer_chars,
    maxErrorChars: config.limits.max_error_chars,
    log,
  };
}
