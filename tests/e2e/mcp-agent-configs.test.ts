// Configs as mcp-agent reads them. Empty (null) sections and values mean "not
// set"; mcp-agent.secrets.yaml is read when mcp_agent.secrets.yaml is absent; the original
// repository's example configs load unchanged; server.allowed_origins: ["null"] lets a page opened
// from a file connect. Also: every config key is documented, and the README stays short.
import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import WebSocket from "ws";
import { configDefaults, loadConfig, parseConfig } from "../../lib/config.ts";
import { startModelServer } from "../helpers/model-server.ts";
import { baseConfig, exitWithin, ROOT, spawnServer, startServer, stopSpawned, type SpawnedServer } from "../helpers/harness.ts";

const FIXTURES = path.join(ROOT, "tests/fixtures/mcp-agent-configs");
const dirs: string[] = [];
const spawned: SpawnedServer[] = [];
after(async () => {
  await stopSpawned(spawned);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), "mcp-agent-compat-"));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return dir;
}

describe("the original repository's example configs", () => {
  const examples = readdirSync(FIXTURES).filter((name) => statSync(path.join(FIXTURES, name)).isDirectory());

  test("there are several, each unchanged from mcp-agent", () => {
    assert.ok(examples.length >= 5, examples.join(", "));
  });

  for (const example of examples) {
    test(`${example} loads`, () => {
      const config = loadConfig(path.join(FIXTURES, example, "mcp_agent.config.yaml"), {});
      assert.ok(config.openai.default_model.length > 0);
    });
  }

  test("their openai keys are honoured (reasoning_effort of mcp_researcher)", () => {
    const config = loadConfig(path.join(FIXTURES, "usecases_mcp_researcher/mcp_agent.config.yaml"), {});
    assert.equal(config.openai.default_model, "o3-mini");
    assert.equal(config.openai.reasoning_effort, "high");
  });
});

describe("null means not set", () => {
  const text = [
    "mcp:",
    "  # servers:",
    "  #   fetch:",
    "  #     command: uvx",
    "openai:",
    "  # default_model: gpt-4o",
    "logger:",
    "  http_endpoint:",
    "agent:",
    "  instruction:",
    "",
  ].join("\n");

  test("empty sections and values take their defaults", () => {
    const config = parseConfig({ file: "/cfg/mcp_agent.config.yaml", text }, undefined, {}, "/cfg");
    const defaults = configDefaults();
    assert.deepEqual(config.mcp.servers, {});
    assert.equal(config.openai.default_model, defaults.openai.default_model);
    assert.equal(config.agent.instruction, defaults.agent.instruction);
  });

  test("a server's empty env: and a null in the secrets file do not override", () => {
    const config = parseConfig(
      {
        file: "/cfg/mcp_agent.config.yaml",
        text: "openai:\n  api_key: sk-from-config\nmcp:\n  servers:\n    fs:\n      command: npx\n      env:\n",
      },
      { file: "/cfg/mcp_agent.secrets.yaml", text: "openai:\n  api_key:\n" },
      {},
      "/cfg",
    );
    assert.deepEqual(config.mcp.servers.fs?.env, {});
    assert.equal(config.openai.api_key, "sk-from-config");
  });

  test("the server starts with such a config instead of exiting with code 2", async () => {
    const dir = tempDir({ "mcp_agent.config.yaml": text });
    const server = spawnServer(["--config", path.join(dir, "mcp_agent.config.yaml"), "--port", "0"]);
    spawned.push(server);
    await server.ready;
    const health = await fetch(`${server.url}/health`);
    assert.equal(health.status, 200);
    server.child.kill("SIGTERM");
    assert.equal(await exitWithin(server, 10_000), 0);
  });
});

describe("the secrets file", () => {
  const example = readFileSync(path.join(FIXTURES, "usecases_fastapi_websocket/mcp_agent.secrets.yaml.example"), "utf8");

  test("mcp-agent.secrets.yaml is read when mcp_agent.secrets.yaml is absent", () => {
    const dir = tempDir({ "mcp_agent.config.yaml": "openai:\n  default_model: gpt-4o-mini\n", "mcp-agent.secrets.yaml": example });
    const config = loadConfig(path.join(dir, "mcp_agent.config.yaml"), {});
    assert.equal(config.openai.api_key, "sk-your-openai-api-key-here");
    assert.ok(config.secretValues.includes("sk-your-openai-api-key-here"), "its values are redacted like the other file's");
  });

  test("mcp_agent.secrets.yaml wins when both are there", () => {
    const dir = tempDir({
      "mcp_agent.config.yaml": "",
      "mcp-agent.secrets.yaml": example,
      "mcp_agent.secrets.yaml": "openai:\n  api_key: sk-underscore-file\n",
    });
    assert.equal(loadConfig(path.join(dir, "mcp_agent.config.yaml"), {}).openai.api_key, "sk-underscore-file");
  });

  test("the example secrets file copied under the alternative name works as is", () => {
    const dir = tempDir({});
    copyFileSync(path.join(FIXTURES, "usecases_fastapi_websocket/mcp_agent.config.yaml"), path.join(dir, "mcp_agent.config.yaml"));
    writeFileSync(path.join(dir, "mcp-agent.secrets.yaml"), example);
    assert.equal(loadConfig(path.join(dir, "mcp_agent.config.yaml"), {}).openai.api_key, "sk-your-openai-api-key-here");
  });
});

/** Opens a socket with this Origin; resolves with "open" or the HTTP status and body of the refusal. */
function tryOrigin(url: string, origin: string): Promise<{ opened: true } | { opened: false; status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { origin });
    ws.once("open", () => {
      ws.close();
      resolve({ opened: true });
    });
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => (body += chunk.toString()));
      res.on("end", () => resolve({ opened: false, status: res.statusCode ?? 0, body }));
    });
    ws.once("error", (error) => {
      if (!/Unexpected server response/.test(error.message)) reject(error);
    });
  });
}

test('server.allowed_origins: ["null"] lets a page opened from a file connect; without it Origin: null is refused', async () => {
  const model = await startModelServer();
  const open = await startServer({ config: baseConfig(model.baseUrl, {}, { server: { allowed_origins: ["null"] } }) });
  const closed = await startServer({ config: baseConfig(model.baseUrl, {}, { server: { allowed_origins: ["*"] } }) });
  try {
    assert.deepEqual(await tryOrigin(open.wsUrl("file_page"), "null"), { opened: true });
    const refused = await tryOrigin(closed.wsUrl("file_page"), "null");
    assert.equal(refused.opened, false);
    assert.ok(!refused.opened && refused.status === 403 && refused.body.includes("server.allowed_origins"), JSON.stringify(refused));
  } finally {
    await open.close();
    await closed.close();
    await model.close();
  }
});

describe("documentation", () => {
  test("docs/configuration.md lists every key of the schema, the new ones included", () => {
    const doc = readFileSync(path.join(ROOT, "docs/configuration.md"), "utf8");
    const leaves = (value: unknown, prefix: string): string[] =>
      typeof value === "object" && value !== null && !Array.isArray(value) && Object.keys(value).length > 0
        ? Object.entries(value).flatMap(([key, child]) => leaves(child, prefix ? `${prefix}.${key}` : key))
        : [prefix];
    // Keys with a default, plus the optional ones this issue added (they have none).
    const keys = [...leaves(configDefaults(), ""), "openai.max_tokens", "openai.user", "agent.max_context_tokens", "limits.tokens_per_day"];
    const missing = keys.filter((key) => !doc.includes(`\`${key}\``));
    assert.deepEqual(missing, [], "keys missing from docs/configuration.md");
    assert.ok(doc.includes("mcp-agent.secrets.yaml"));
  });

  test("docs/protocol.md describes the answer frame's usage; docs/operations.md the metrics; the README stays under 15 KB", () => {
    assert.match(readFileSync(path.join(ROOT, "docs/protocol.md"), "utf8"), /"usage"/);
    assert.match(readFileSync(path.join(ROOT, "docs/operations.md"), "utf8"), /mcp_agent_turns_total/);
    assert.ok(statSync(path.join(ROOT, "README.md")).size <= 15 * 1024);
  });
});
