// Provider settings, the pure parts: Azure endpoints as people copy them, Azure from the config
// and its variables, and the start-time model-name warning.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../lib/config.ts";
import { azureClientOptions, splitAzureEndpoint } from "../../lib/model/provider.ts";
import { unknownModelMessage } from "../../lib/model/model-check.ts";

const parse = (text: string, env: Record<string, string> = {}, secrets?: string) =>
  parseConfig({ file: "c.yaml", text }, secrets === undefined ? undefined : { file: "s.yaml", text: secrets }, env, "/tmp");

test("an Azure endpoint: the resource alone, with /openai, or with the deployment path", () => {
  assert.deepEqual(splitAzureEndpoint("https://r.openai.azure.com/"), { resource: "https://r.openai.azure.com", deployment: undefined });
  assert.deepEqual(splitAzureEndpoint("https://r.openai.azure.com/openai"), {
    resource: "https://r.openai.azure.com",
    deployment: undefined,
  });
  assert.deepEqual(splitAzureEndpoint("https://r.cognitiveservices.azure.com/openai/deployments/gpt-4o/"), {
    resource: "https://r.cognitiveservices.azure.com",
    deployment: "gpt-4o",
  });
});

test("Azure is chosen by a written azure: section or openai.provider, and filled from AZURE_OPENAI_* variables", () => {
  const plain = parse("openai: {default_model: gpt-4o}", {
    AZURE_OPENAI_ENDPOINT: "https://r.openai.azure.com",
    AZURE_OPENAI_API_KEY: "k".repeat(12),
  });
  assert.equal(plain.azure, undefined, "variables alone do not switch the provider");
  assert.equal(plain.openai.provider, "openai");
  const section = parse(
    "azure: {endpoint: 'https://r.openai.azure.com', default_model: gpt-4.1}",
    {},
    "azure: {api_key: secret-azure-key}",
  );
  assert.equal(section.openai.provider, "azure");
  assert.equal(section.openai.default_model, "gpt-4.1", "azure.default_model is the model");
  assert.equal(section.azure?.api_version, "2024-10-21");
  assert.ok(section.secretValues.includes("secret-azure-key"));
  assert.deepEqual(azureClientOptions(section.azure ?? {}, section.openai.default_model), {
    baseURL: "https://r.openai.azure.com/openai",
    apiVersion: "2024-10-21",
    deployment: "gpt-4.1",
  });
  const viaOpenai = parse("openai: {provider: azure, endpoint: 'https://r.openai.azure.com', azure_deployment: d1}", {
    AZURE_OPENAI_API_KEY: "env-key-123",
    OPENAI_API_VERSION: "2024-06-01",
  });
  assert.equal(viaOpenai.azure?.api_key, "env-key-123");
  assert.equal(viaOpenai.azure?.api_version, "2024-06-01");
  assert.equal(viaOpenai.azure?.azure_deployment, "d1");
  const optedOut = parse("openai: {provider: openai}\nazure: {endpoint: 'https://r.openai.azure.com'}");
  assert.equal(optedOut.azure, undefined);
  assert.throws(() => parse("openai: {provider: azure}"), /azure\.endpoint \(or AZURE_OPENAI_ENDPOINT\)/);
});

test("the model-name warning: listed names match with Gemini's models/ prefix and Ollama's :latest", () => {
  assert.equal(unknownModelMessage("gpt-4o", ["gpt-4o", "gpt-4o-mini"]), undefined);
  assert.equal(unknownModelMessage("gemini-2.0-flash", ["models/gemini-2.0-flash"]), undefined);
  assert.equal(unknownModelMessage("llama3.2", ["llama3.2:latest"]), undefined);
  assert.equal(unknownModelMessage("x", []), undefined, "an empty list says nothing");
  const many = Array.from({ length: 25 }, (_, n) => `m${n}`);
  assert.match(unknownModelMessage("gpt-5", many) ?? "", /^openai\.default_model "gpt-5" is not one of the 25 models .*m19, and 5 more\)/);
});
