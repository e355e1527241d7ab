// Provider settings: each preset of docs/models.md (its base URL's path, its quirks) against the
// scripted model server, the request the SDK sends checked (path, query, headers); Azure OpenAI
// from mcp-agent's azure: section and from openai.provider: azure; the model list read at start.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterTool, lastToolResult, startModelServer, type ModelServer, type ScriptedReply } from "../helpers/model-server.ts";
import {
  baseConfig,
  connectUser,
  readLog,
  ROOT,
  startServer,
  testServerEntry,
  until,
  type Frame,
  type RunningServer,
} from "../helpers/harness.ts";

let model: ModelServer;
let origin: string;

before(async () => {
  model = await startModelServer();
  origin = new URL(model.baseUrl).origin;
});
after(() => model.close());

/** The presets table of docs/models.md: name and base URL of each row. */
function presets(): { name: string; baseUrl: string }[] {
  const doc = readFileSync(path.join(ROOT, "docs/models.md"), "utf8");
  const table = doc.slice(doc.indexOf("| preset | base_url |"));
  const rows: { name: string; baseUrl: string }[] = [];
  for (const line of table.split("\n").slice(2)) {
    if (!line.startsWith("|")) break;
    const [name, url] = line
      .split("|")
      .slice(1, 3)
      .map((cell) => cell.trim());
    rows.push({ name: name ?? "", baseUrl: (url ?? "").replace(/`/g, "") });
  }
  return rows;
}

/** The shapes each provider is known to send (docs/models.md, "quirks handled"). */
const QUIRKS: Record<string, Partial<ScriptedReply>> = {
  OpenAI: {},
  Ollama: { wholeToolCalls: true, toolCallIndex: false, reasoning: "thinking", reasoningField: "reasoning" },
  vLLM: { reasoning: "thinking", reasoningField: "reasoning_content" },
  "llama.cpp": { usageAt: "finish_chunk", reasoning: "thinking", reasoningField: "reasoning_content" },
  "LM Studio": { reasoning: "thinking", reasoningField: "reasoning_content" },
  OpenRouter: { sseComments: true, reasoning: "thinking", reasoningField: "reasoning" },
  Groq: { usageAt: "x_groq", wholeToolCalls: true },
  Gemini: { toolCallIndex: false },
  Anthropic: {},
  DeepSeek: { reasoning: "thinking", reasoningField: "reasoning_content" },
  Together: {},
};

async function readTurn(running: RunningServer, user: string, message: string): Promise<Frame[]> {
  const { client } = await connectUser(running, user, "?stream=1");
  client.send({ message });
  const frames: Frame[] = [];
  for (;;) {
    const frame = await client.next();
    frames.push(frame);
    if (frame.type === "answer" || frame.type === "error" || frame.type === "cancelled") break;
  }
  await client.close();
  return frames;
}

const rows = presets();

test("docs/models.md lists the presets the issue names, each with its quirks scripted here", () => {
  const names = rows.map((row) => row.name);
  for (const wanted of ["Ollama", "vLLM", "llama.cpp", "LM Studio", "OpenRouter", "Groq", "Gemini", "Anthropic"])
    assert.ok(names.includes(wanted), `${wanted} is a preset`);
  for (const name of names) assert.ok(name in QUIRKS, `the test scripts ${name}'s quirks`);
});

for (const preset of rows) {
  test(`preset ${preset.name}: the SDK calls <base_url>/chat/completions with the key; a tool runs in its quirks`, async () => {
    const base = new URL(preset.baseUrl);
    const prefix = base.pathname.replace(/\/+$/, "");
    const key = `sk-${preset.name.replace(/\W/g, "")}-key`;
    const extraHeaders = preset.name === "OpenRouter" ? { "HTTP-Referer": "https://example.test", "X-Title": "mcp-agent" } : {};
    const quirks = QUIRKS[preset.name] ?? {};
    model.setModels(["test-model"]);
    model.setResponder((request) =>
      afterTool(request)
        ? { ...quirks, content: `RESULT ${lastToolResult(request)}` }
        : { ...quirks, toolCalls: [{ name: "test_echo", arguments: { text: preset.name }, id: "call_0" }] },
    );
    const before = model.requests.length;
    const listsBefore = model.modelListRequests.length;
    const running = await startServer({
      config: {
        ...baseConfig(`${origin}${prefix}`, { test: testServerEntry }),
        openai: { base_url: `${origin}${prefix}`, default_model: "test-model", max_retries: 0, default_headers: extraHeaders },
      },
      secrets: { openai: { api_key: key } },
    });
    try {
      const frames = await readTurn(running, "preset_user", "use the tool");
      assert.equal(frames.at(-1)?.type, "answer", JSON.stringify(frames.at(-1)));
      assert.equal(frames.at(-1)?.message, `RESULT echo:${preset.name}`);
      if (quirks.reasoning) assert.ok(frames.some((frame) => frame.type === "reasoning_delta"));
      const sent = model.requests.slice(before);
      assert.equal(sent.length, 2);
      for (const request of sent) {
        assert.equal(request.url, `${prefix}/chat/completions`);
        assert.equal(request.headers?.authorization, `Bearer ${key}`);
        for (const [name, value] of Object.entries(extraHeaders)) assert.equal(request.headers?.[name.toLowerCase()], value);
      }
      await until(() => model.modelListRequests.length > listsBefore, "the model list read at start");
      assert.equal(model.modelListRequests[listsBefore]?.url, `${prefix}/models`);
    } finally {
      await running.close();
      model.setModels(undefined);
    }
  });
}

async function azureTurn(options: Parameters<typeof startServer>[0]): Promise<void> {
  model.setResponder(() => ({ content: "from azure", emptyChoices: true }));
  const before = model.requests.length;
  const running = await startServer(options);
  try {
    const frames = await readTurn(running, "azure_user", "hello azure");
    assert.equal(frames.at(-1)?.message, "from azure");
    assert.equal(model.requests.length, before + 1);
  } finally {
    await running.close();
  }
}

test("Azure from mcp-agent's azure: section: deployment path, api-version query, api-key header", async () => {
  await azureTurn({
    config: {
      ...baseConfig(model.baseUrl),
      azure: { endpoint: `${origin}/`, api_version: "2024-10-21", azure_deployment: "chat-deploy", default_model: "gpt-4o" },
    },
    secrets: { azure: { api_key: "azure-secret-key" } },
  });
  const request = model.requests.at(-1);
  assert.equal(request?.url, "/openai/deployments/chat-deploy/chat/completions?api-version=2024-10-21");
  assert.equal(request?.headers?.["api-key"], "azure-secret-key");
  assert.equal(request?.headers?.authorization, undefined, "no OpenAI bearer token goes to Azure");
  assert.equal(request?.model, "gpt-4o");
});

test("Azure by openai.provider: azure, the deployment in the endpoint, the key and version from AZURE_OPENAI_* variables", async () => {
  await azureTurn({
    config: {
      ...baseConfig(model.baseUrl),
      openai: { provider: "azure", endpoint: `${origin}/openai/deployments/from-endpoint`, default_model: "gpt-4o-mini", max_retries: 0 },
    },
    env: { AZURE_OPENAI_API_KEY: "env-azure-key", AZURE_OPENAI_API_VERSION: "2025-01-01-preview" },
  });
  const request = model.requests.at(-1);
  assert.equal(request?.url, "/openai/deployments/from-endpoint/chat/completions?api-version=2025-01-01-preview");
  assert.equal(request?.headers?.["api-key"], "env-azure-key");
});

test("an Azure section without an endpoint or a key is refused at start, naming the key", async () => {
  await assert.rejects(
    startServer({ config: { ...baseConfig(model.baseUrl), azure: { api_key: "k".repeat(10) } } }),
    /azure\.endpoint \(or AZURE_OPENAI_ENDPOINT\)/,
  );
  await assert.rejects(
    startServer({ config: { ...baseConfig(model.baseUrl), azure: { endpoint: origin } } }),
    /azure\.api_key \(or AZURE_OPENAI_API_KEY\)/,
  );
});

test("a model the endpoint does not list is reported once, clearly, at start; a listed one is not", async () => {
  model.setModels(["gpt-4o", "llama3.2:latest"]);
  try {
    const unknown = await startServer({ config: baseConfig(model.baseUrl), secrets: { openai: { api_key: "sk-list" } } });
    try {
      await until(() => readLog(unknown.logPath).some((line) => line.event === "model_unknown"), "the model_unknown warning");
      const warnings = readLog(unknown.logPath).filter((line) => line.event === "model_unknown");
      assert.equal(warnings.length, 1);
      assert.equal(warnings[0]?.level, "warn");
      assert.equal(
        warnings[0]?.message,
        'openai.default_model "test-model" is not one of the 2 models the endpoint lists (gpt-4o, llama3.2:latest): turns will fail until openai.default_model (or OPENAI_DEFAULT_MODEL) names one of them',
      );
    } finally {
      await unknown.close();
    }
    const known = await startServer({
      config: { ...baseConfig(model.baseUrl), openai: { base_url: model.baseUrl, default_model: "llama3.2", max_retries: 0 } },
      secrets: { openai: { api_key: "sk-list" } },
    });
    try {
      await until(() => readLog(known.logPath).some((line) => line.event === "model_listed"), "the model_listed line");
      assert.equal(
        readLog(known.logPath).some((line) => line.event === "model_unknown"),
        false,
      );
    } finally {
      await known.close();
    }
  } finally {
    model.setModels(undefined);
  }
});

test("an endpoint without a model list is not an error: one debug line, no warning", async () => {
  const running = await startServer({ config: baseConfig(model.baseUrl), secrets: { openai: { api_key: "sk-nolist" } } });
  try {
    await until(() => readLog(running.logPath).some((line) => line.event === "model_list_unavailable"), "the model_list_unavailable line");
    const line = readLog(running.logPath).find((entry) => entry.event === "model_list_unavailable");
    assert.equal(line?.level, "debug");
  } finally {
    await running.close();
  }
});
