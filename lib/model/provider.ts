// Which client talks to the model: the OpenAI SDK for OpenAI and every OpenAI-compatible server
// (openai.base_url), or its AzureOpenAI client for Azure OpenAI (mcp-agent's azure: section).
import OpenAI, { AzureOpenAI } from "openai";
import { modelFetch } from "../agent/output-budget.ts";
import type { Config } from "../config.ts";

/**
 * An Azure endpoint as people copy it: the resource (`https://r.openai.azure.com`), or with the
 * deployment path (`…/openai/deployments/<name>`, as mcp-agent's examples write it): the
 * resource and that deployment.
 */
export function splitAzureEndpoint(endpoint: string): { resource: string; deployment: string | undefined } {
  const found = /^(.*?)\/openai(?:\/deployments\/([^/?#]+))?\/?(?:[?#].*)?$/.exec(endpoint);
  const resource = (found ? (found[1] ?? "") : (endpoint.split(/[?#]/)[0] ?? "")).replace(/\/+$/, "");
  return { resource, deployment: found?.[2] ? decodeURIComponent(found[2]) : undefined };
}

/** The Azure request route: /openai/deployments/<deployment>/chat/completions?api-version=<v>, with an api-key header. */
export function azureClientOptions(azure: NonNullable<Config["azure"]>, model: string) {
  const { resource, deployment } = splitAzureEndpoint(azure.endpoint ?? "");
  return {
    baseURL: `${resource}/openai`,
    apiVersion: azure.api_version ?? "",
    deployment: azure.azure_deployment ?? deployment ?? model,
  };
}

/** The model client of the config; undefined without an API key (every turn then says how to set one). */
export function modelClientFrom(config: Config): OpenAI | undefined {
  const { openai, azure } = config;
  const common = {
    timeout: openai.request_timeout_seconds * 1000,
    maxRetries: openai.max_retries,
    defaultHeaders: openai.default_headers,
    // Answers sent whole (JSON) are read by the SDK at once: the cap (limits.max_answer_bytes) must come before.
    fetch: modelFetch(config.limits.max_answer_bytes),
  };
  // parseConfig refuses an Azure config without endpoint or key.
  if (azure) return new AzureOpenAI({ ...common, apiKey: azure.api_key, ...azureClientOptions(azure, openai.default_model) });
  if (!openai.api_key) return undefined;
  return new OpenAI({ ...common, apiKey: openai.api_key, baseURL: openai.base_url });
}
