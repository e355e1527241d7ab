// lib/config.ts reading files as mcp-agent does: the original repository's example configs load
// unchanged, and the secrets file is found under either of its two names.
import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { loadConfig } from "../../lib/config.ts";
import { ROOT } from "../helpers/harness.ts";

const FIXTURES = path.join(ROOT, "tests/fixtures/mcp-agent-configs");
const dirs: string[] = [];
after(() => {
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
