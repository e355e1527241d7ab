// Configs as mcp-agent reads them, through the server: empty (null) sections and values mean
// "not set" (and the server starts with such a config); server.allowed_origins: ["null"] lets a
// page opened from a file connect. (Loading the original's example configs and the secrets file's two
// names: tests/unit/config-files.test.ts; the documentation of every key: tests/unit/config-docs.test.ts.)
import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import WebSocket from "ws";
import { configDefaults, parseConfig } from "../../lib/config.ts";
import { startModelServer } from "../helpers/model-server.ts";
import { baseConfig, exitWithin, spawnServer, startServer, stopSpawned, type SpawnedServer } from "../helpers/harness.ts";

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
