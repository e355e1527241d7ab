// The config (lib/config.ts): mcp_agent.config.yaml + mcp_agent.secrets.yaml + the environment,
// parsed by the pure parseConfig(); the logger the config's `logger` section asks for; and what the
// server process does with a bad config, with model settings from the environment or no key, and
// what it logs where.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { parse } from "yaml";
import { ConfigError, loadConfig, parseConfig, type Config } from "../../lib/config.ts";
import { createLogger, loggerFromConfig } from "../../lib/log.ts";
import { afterTool, lastUserText, startModelServer, type ModelServer } from "../helpers/model-server.ts";
import {
  connect,
  makeConfigDir,
  readLog,
  ROOT,
  exitWithin,
  spawnServer,
  stopSpawned,
  testServerEntry,
  until,
  type ConfigDirOptions,
  type Frame,
  type SpawnedServer,
  type TestClient,
} from "../helpers/harness.ts";

const CONFIG = "/cfg/mcp_agent.config.yaml";
const SECRETS = "/cfg/mcp_agent.secrets.yaml";

/** parseConfig of YAML text (and optional secrets text) with the given environment. */
function parse_(text: string, secrets?: string, env: Record<string, string | undefined> = {}): Config {
  return parseConfig({ file: CONFIG, text }, secrets === undefined ? undefined : { file: SECRETS, text: secrets }, env, "/cfg");
}

/** The ConfigError message parseConfig throws for this text. */
function errorOf(text: string, secrets?: string): string {
  try {
    parse_(text, secrets);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.message;
  }
  assert.fail("the config was accepted");
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

// ---- point 16: parsing ------------------------------------------------------------------------

describe("parseConfig", () => {
  test("an empty config gets every default", () => {
    const config = parse_("");
    assert.equal(config.openai.default_model, "gpt-4o-mini");
    assert.equal(config.openai.api_key, undefined);
    assert.equal(config.openai.base_url, undefined);
    assert.deepEqual(config.mcp.servers, {});
    assert.equal(config.logLevel, "info");
    assert.equal(config.logger.path_settings.path_pattern, "logs/mcp-agent-{unique_id}.jsonl");
    assert.equal(config.session.idle_timeout_seconds, 2 * 60 * 60);
    assert.equal(config.session.sweep_interval_seconds, 60 * 60);
    assert.equal(config.configDir, "/cfg");
    assert.deepEqual(parse_("# only a comment\n").openai, config.openai);
  });

  test("the secrets file is merged over the config, key by key", () => {
    const config = parse_(
      "openai:\n  default_model: model-from-config\n  api_key: key-from-config\nmcp:\n  servers:\n    fs:\n      command: npx\n      env: {A: a}\n",
      "openai:\n  api_key: sk-from-secrets\nmcp:\n  servers:\n    fs:\n      env: {TOKEN: t}\n",
    );
    assert.equal(config.openai.api_key, "sk-from-secrets");
    assert.equal(config.openai.default_model, "model-from-config");
    assert.equal(config.mcp.servers.fs?.command, "npx");
    assert.deepEqual(config.mcp.servers.fs?.env, { A: "a", TOKEN: "t" });
  });

  test("unknown keys are tolerated at every level", () => {
    const config = parse_(
      [
        "anthropic: {default_model: claude}",
        "otel: {enabled: false}",
        "logger: {transports: [console, http], progress_display: true, batch_size: 100}",
        "openai: {default_model: m, reasoning_effort: low}",
        "mcp:",
        "  servers:",
        "    x: {command: node, args: [a.js], some_future_option: 1}",
      ].join("\n"),
    );
    assert.equal(config.openai.default_model, "m");
    assert.deepEqual(config.mcp.servers.x?.args, ["a.js"]);
  });

  test("logger.level warning is the warn level", () => {
    assert.equal(parse_("logger: {level: warning}").logLevel, "warn");
    assert.equal(parse_("logger: {level: error}").logLevel, "error");
  });

  test("invalid YAML names the file and the line", () => {
    const message = errorOf("logger:\n  level: info\nopenai:\n  default_model: gpt: 4o\n");
    assert.match(message, new RegExp(`^${escape(CONFIG)}:4\\b`));
    assert.match(message, /YAML/);
  });

  test("invalid YAML in the secrets file names the secrets file", () => {
    const message = errorOf("openai: {}\n", "openai:\n  api_key: 'unterminated\n");
    assert.ok(message.startsWith(`${SECRETS}:`), message);
    assert.ok(!message.includes(CONFIG), message);
  });

  test("a wrong type names the key path, the line and what was expected", () => {
    const args = errorOf("logger: {level: info}\nmcp:\n  servers:\n    fs:\n      command: npx\n      args: not-a-list\n");
    assert.match(args, new RegExp(`${escape(CONFIG)}:6: mcp\\.servers\\.fs\\.args: .*expected array`));
    const idle = errorOf("session:\n  idle_timeout_seconds: soon\n");
    assert.match(idle, new RegExp(`${escape(CONFIG)}:2: session\\.idle_timeout_seconds: .*expected number`));
    const level = errorOf("logger:\n  level: loud\n");
    assert.match(level, /:2: logger\.level: .*(debug|info|warning|error)/);
  });

  test("a wrong type in the secrets file points into the secrets file", () => {
    const message = errorOf("openai: {default_model: m}\n", "openai:\n  api_key: 12345\n");
    assert.match(message, new RegExp(`${escape(SECRETS)}:2: openai\\.api_key: .*expected string`));
  });

  test("a stdio server without a command is refused", () => {
    const message = errorOf("mcp:\n  servers:\n    nocmd:\n      args: [x]\n");
    assert.match(message, /mcp\.servers\.nocmd/);
    assert.match(message, /command/);
  });

  test("a top level that is not a mapping is refused", () => {
    assert.match(errorOf("- a\n- b\n"), new RegExp(`^${escape(CONFIG)}: .*mapping`));
  });
});

// ---- point 15: model settings -----------------------------------------------------------------

describe("model settings", () => {
  const env = { OPENAI_API_KEY: "sk-env", OPENAI_BASE_URL: "http://env.example/v1", OPENAI_DEFAULT_MODEL: "env-model" };

  test("the environment fills what the files leave out", () => {
    const config = parse_("openai: {}\n", undefined, env);
    assert.equal(config.openai.api_key, "sk-env");
    assert.equal(config.openai.base_url, "http://env.example/v1");
    assert.equal(config.openai.default_model, "env-model");
  });

  test("a value in the files wins over the environment", () => {
    const config = parse_(
      "openai:\n  base_url: http://file.example/v1\n  default_model: gpt-4o-mini\n",
      "openai:\n  api_key: sk-file\n",
      env,
    );
    assert.equal(config.openai.api_key, "sk-file");
    assert.equal(config.openai.base_url, "http://file.example/v1");
    assert.equal(config.openai.default_model, "gpt-4o-mini");
  });

  test("with nothing set the model is gpt-4o-mini and there is no key", () => {
    const config = parse_("openai: {}\n", undefined, {});
    assert.equal(config.openai.default_model, "gpt-4o-mini");
    assert.equal(config.openai.api_key, undefined);
  });
});

// ---- loadConfig and the shipped files -----------------------------------------------------------

describe("loadConfig", () => {
  const dirs: string[] = [];
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  test("the shipped mcp_agent.config.yaml loads and keeps the original's keys", () => {
    // A copy, so a developer's own mcp_agent.secrets.yaml beside the original is not merged in.
    const dir = mkdtempSync(path.join(tmpdir(), "mcp-agent-shipped-"));
    dirs.push(dir);
    const file = path.join(dir, "mcp_agent.config.yaml");
    copyFileSync(path.join(ROOT, "mcp_agent.config.yaml"), file);

    const raw = parse(readFileSync(file, "utf8")) as {
      $schema?: unknown;
      execution_engine?: unknown;
      logger?: unknown;
      mcp: { servers: Record<string, unknown> };
      openai?: { default_model?: unknown };
    };
    assert.equal(typeof raw.$schema, "string");
    assert.equal(raw.execution_engine, "asyncio");
    assert.ok(raw.logger && typeof raw.logger === "object");
    assert.ok(raw.mcp?.servers?.fetch, "mcp.servers.fetch");
    assert.ok(raw.mcp?.servers?.filesystem, "mcp.servers.filesystem");
    assert.equal(raw.openai?.default_model, "gpt-4o-mini");

    const config = loadConfig(file, {});
    assert.equal(config.$schema, raw.$schema);
    assert.equal(config.execution_engine, "asyncio");
    assert.deepEqual(Object.keys(config.mcp.servers).sort(), Object.keys(raw.mcp.servers).sort());
    assert.ok(config.mcp.servers.filesystem?.args.includes("@modelcontextprotocol/server-filesystem"));
    assert.equal(config.openai.default_model, "gpt-4o-mini");
    assert.equal(config.openai.api_key, undefined);
    assert.equal(config.configDir, dir);
  });

  test("the shipped secrets example parses and puts the key at openai.api_key", () => {
    const example = readFileSync(path.join(ROOT, "mcp_agent.secrets.yaml.example"), "utf8");
    const config = parse_("openai: {default_model: m}\n", example);
    assert.equal(typeof config.openai.api_key, "string");
    assert.equal(config.openai.default_model, "m");
  });

  test("mcp_agent.secrets.yaml beside the config is read and merged", () => {
    const dir = makeConfigDir({ config: { openai: { default_model: "m" } }, secrets: { openai: { api_key: "sk-beside" } } });
    dirs.push(dir);
    const config = loadConfig(path.join(dir, "mcp_agent.config.yaml"), { OPENAI_API_KEY: "sk-env" });
    assert.equal(config.openai.api_key, "sk-beside");
    assert.equal(config.openai.default_model, "m");
  });

  test("a missing config file is a ConfigError naming it", () => {
    assert.throws(
      () => loadConfig("/nonexistent/mcp_agent.config.yaml", {}),
      (error: unknown) => {
        return error instanceof ConfigError && error.message.includes("/nonexistent/mcp_agent.config.yaml");
      },
    );
  });
});

// ---- point 23: the logger the config asks for ---------------------------------------------------

/** A stream that keeps what is written to it. */
function sink(): { stream: Writable; text: () => string } {
  let text = "";
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  return { stream, text: () => text };
}

describe("loggerFromConfig", () => {
  const dirs: string[] = [];
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  const configIn = (text: string, secrets?: string): Config => {
    const dir = mkdtempSync(path.join(tmpdir(), "mcp-agent-log-"));
    dirs.push(dir);
    return parseConfig(
      { file: path.join(dir, "c.yaml"), text },
      secrets ? { file: path.join(dir, "s.yaml"), text: secrets } : undefined,
      {},
      dir,
    );
  };

  test("the default path_pattern is logs/mcp-agent-{unique_id}.jsonl under the config's folder, folder created", async () => {
    const config = configIn("logger: {transports: [file]}\n");
    const log = loggerFromConfig(config);
    assert.ok(log.filePath);
    assert.equal(path.dirname(log.filePath), path.join(config.configDir, "logs"));
    assert.match(path.basename(log.filePath), /^mcp-agent-\d{8}_\d{6}\.jsonl$/);
    log.info("hello", { n: 1 });
    await log.close();
    const [line] = readFileSync(log.filePath, "utf8").trim().split("\n");
    const entry = JSON.parse(line!) as Record<string, unknown>;
    assert.equal(entry.event, "hello");
    assert.equal(entry.level, "info");
    assert.equal(entry.n, 1);
  });

  test("a custom path_pattern with unique_id session_id", async () => {
    const config = configIn(
      "logger:\n  transports: [file]\n  path_settings:\n    path_pattern: deep/er/run-{unique_id}.log\n    unique_id: session_id\n",
    );
    const log = loggerFromConfig(config);
    assert.match(log.filePath ?? "", /\/deep\/er\/run-[0-9a-f-]{36}\.log$/);
    assert.ok(log.filePath!.startsWith(config.configDir));
    assert.ok(existsSync(path.dirname(log.filePath!)));
    await log.close();
  });

  test("console only: lines go to the console stream and no file is made", async () => {
    const config = configIn("logger: {transports: [console]}\n");
    const out = sink();
    const log = loggerFromConfig(config, { consoleStream: out.stream });
    assert.equal(log.filePath, undefined);
    log.info("to_console");
    await log.close();
    assert.equal((JSON.parse(out.text()) as { event: string }).event, "to_console");
    assert.equal(existsSync(path.join(config.configDir, "logs")), false);
  });

  test("transports win over the older type; http is accepted and writes nothing", async () => {
    const both = configIn("logger: {type: file, transports: [console]}\n");
    assert.equal(loggerFromConfig(both, { consoleStream: sink().stream }).filePath, undefined);
    const typeOnly = configIn("logger: {type: file}\n");
    const fileLog = loggerFromConfig(typeOnly);
    assert.ok(fileLog.filePath);
    await fileLog.close();
    const http = configIn("logger: {transports: [http]}\n");
    const out = sink();
    const httpLog = loggerFromConfig(http, { consoleStream: out.stream });
    httpLog.error("nowhere");
    assert.equal(httpLog.filePath, undefined);
    assert.equal(out.text(), "");
  });

  test("level filtering: below the level nothing is written; an override wins", async () => {
    const config = configIn("logger: {transports: [console], level: warning}\n");
    const out = sink();
    const log = loggerFromConfig(config, { consoleStream: out.stream });
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
    await log.close();
    assert.deepEqual(
      out
        .text()
        .trim()
        .split("\n")
        .map((line) => (JSON.parse(line) as { event: string }).event),
      ["w", "e"],
    );
    const errorOnly = sink();
    const strict = loggerFromConfig(configIn("logger: {transports: [console], level: error}\n"), { consoleStream: errorOnly.stream });
    strict.info("i");
    strict.warn("w");
    assert.equal(errorOnly.text(), "");
    const loud = sink();
    const overridden = loggerFromConfig(config, { level: "debug", consoleStream: loud.stream });
    overridden.debug("d");
    assert.match(loud.text(), /"event":"d"/);
  });

  test("the API key is redacted from every line, wherever it appears", async () => {
    const key = "sk-secret-abcdef123456";
    const config = configIn("logger: {transports: [console, file]}\n", `openai: {api_key: ${key}}\n`);
    const out = sink();
    const log = loggerFromConfig(config, { consoleStream: out.stream });
    log.warn("model_error", { error: `Incorrect API key provided: ${key}`, nested: { again: [key] } });
    log.error("failure", { error: new Error(`bad ${key}`) });
    await log.close();
    const file = readFileSync(log.filePath!, "utf8");
    for (const text of [out.text(), file]) {
      assert.match(text, /Incorrect API key provided/);
      assert.ok(!text.includes(key), text);
    }
  });

  test("a key with characters JSON escapes is redacted too", async () => {
    const key = 'sk-"odd\\key-123';
    const config = configIn("logger: {transports: [console]}\n", `openai: {api_key: '${key}'}\n`);
    assert.equal(config.openai.api_key, key);
    const out = sink();
    const log = loggerFromConfig(config, { consoleStream: out.stream });
    log.warn("model_error", { error: `Incorrect API key provided: ${key}` });
    await log.close();
    assert.match(out.text(), /Incorrect API key provided/);
    assert.ok(!out.text().includes(key), out.text());
    assert.ok(!out.text().includes(JSON.stringify(key).slice(1, -1)), out.text());
  });
});

// ---- the server as a process: a bad config, model settings from the environment, logging ----
// Each spawn costs about a second of CPU: the tests of a group run a few at a time.

const API_KEY = "sk-secret-abcdef123456";
/** Chat messages that script the model; anything else is echoed. Tests run concurrently, so the
 * script is keyed by the message, not by arrival order. */
const USE_TOOL = "call the echo tool";
const CAUSE_401 = "cause a 401";

let model: ModelServer;
const dirs: string[] = [];
const children: SpawnedServer[] = [];

before(async () => {
  model = await startModelServer({
    responder: (request) => {
      const text = lastUserText(request);
      if (text === USE_TOOL)
        return afterTool(request) ? { content: "done" } : { toolCalls: [{ name: "test_echo", arguments: { text: "ping" } }] };
      if (text === CAUSE_401) return { status: 401, errorMessage: `Incorrect API key provided: ${API_KEY}` };
      return { content: `echo: ${text}` };
    },
  });
});
after(async () => {
  await stopSpawned(children);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  await model.close();
});

/** A config folder whose config file is `text` verbatim. */
function rawConfigDir(text: string): string {
  const dir = makeConfigDir();
  dirs.push(dir);
  writeFileSync(path.join(dir, "mcp_agent.config.yaml"), text);
  return dir;
}

function configDir(options: ConfigDirOptions): string {
  const dir = makeConfigDir(options);
  dirs.push(dir);
  return dir;
}

/** Config for a server that talks to the scripted model. */
function modelConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { openai: { base_url: model.baseUrl, default_model: "test-model", max_retries: 0 }, ...extra };
}

/** The server on a free port with `--config <dir>/mcp_agent.config.yaml`, stopped after the tests. */
function spawnIn(dir: string, env: Record<string, string | undefined> = {}) {
  const spawned = spawnServer(["--config", path.join(dir, "mcp_agent.config.yaml"), "--port", "0"], env);
  spawned.ready.catch(() => undefined); // awaited only by the tests that expect a start
  children.push(spawned);
  return spawned;
}

async function stop(spawned: SpawnedServer): Promise<void> {
  spawned.child.kill("SIGTERM");
  assert.equal(await exitWithin(spawned, 5000), 0);
}

async function connectTo(url: string, userId: string): Promise<TestClient> {
  const client = await connect(`${url.replace(/^http/, "ws")}/ws/${userId}`);
  await client.next(); // the welcome
  return client;
}

async function sessionInfo(url: string, userId: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${url}/sessions/${userId}`);
  assert.equal(res.status, 200);
  return (await res.json()) as Record<string, unknown>;
}

function lines(text: string): string[] {
  return text.split("\n").filter((line) => line.trim() !== "");
}

/** The only log file under <dir>/logs. */
function onlyLogFile(dir: string, pattern: RegExp): string {
  const files = readdirSync(path.join(dir, "logs"));
  assert.equal(files.length, 1, `log files: ${files.join(", ")}`);
  assert.match(files[0]!, pattern);
  return path.join(dir, "logs", files[0]!);
}

describe("the server process: config errors, model settings, logging", { concurrency: 3 }, () => {
  test("invalid YAML: exit 2, the message names the file and the line", async () => {
    const dir = rawConfigDir("logger:\n  level: info\nopenai:\n  default_model: gpt: 4o\n");
    const spawned = spawnIn(dir);
    assert.equal(await exitWithin(spawned, 30000), 2);
    assert.match(spawned.stderr(), new RegExp(`${escape(path.join(dir, "mcp_agent.config.yaml"))}:4\\b`));
    assert.equal(spawned.stdout(), "");
  });

  test("a wrong type: exit 2 naming the key path, the line and what was expected", async () => {
    const dir = rawConfigDir(
      "mcp:\n  servers:\n    fs:\n      command: npx\n      args: not-a-list\nsession:\n  idle_timeout_seconds: soon\n",
    );
    const spawned = spawnIn(dir);
    assert.equal(await exitWithin(spawned, 30000), 2);
    const file = escape(path.join(dir, "mcp_agent.config.yaml"));
    assert.match(spawned.stderr(), new RegExp(`${file}:5: mcp\\.servers\\.fs\\.args: .*expected array`));
    assert.match(spawned.stderr(), new RegExp(`${file}:7: session\\.idle_timeout_seconds: .*expected number`));
  });

  test("a stdio server without a command: exit 2", async () => {
    const dir = rawConfigDir("mcp:\n  servers:\n    nocmd:\n      args: [x]\n");
    const spawned = spawnIn(dir);
    assert.equal(await exitWithin(spawned, 30000), 2);
    assert.match(spawned.stderr(), /mcp\.servers\.nocmd.*command/);
  });

  test("OPENAI_API_KEY, OPENAI_BASE_URL and OPENAI_DEFAULT_MODEL from the environment reach the model", async () => {
    const dir = configDir({ config: { logger: { transports: ["file"], path: "logs/env.jsonl" }, openai: { max_retries: 0 } } });
    const key = "sk-from-the-environment-42";
    const spawned = spawnIn(dir, { OPENAI_API_KEY: key, OPENAI_BASE_URL: model.baseUrl, OPENAI_DEFAULT_MODEL: "env-model" });
    await spawned.ready;
    const client = await connectTo(spawned.url, "env_user");
    client.send({ message: "env key check" });
    assert.equal((await client.next()).message, "echo: env key check");
    const request = model.requests.find((candidate) => lastUserText(candidate) === "env key check");
    assert.equal(request?.authorization, `Bearer ${key}`);
    assert.equal(request?.model, "env-model");
    await client.close();
    await stop(spawned);
  });

  test("with no key anywhere the server starts, and a chat message says how to set the key", async () => {
    const dir = configDir({
      config: { logger: { transports: ["file"], path: "logs/nokey.jsonl" }, openai: { base_url: model.baseUrl, max_retries: 0 } },
    });
    const spawned = spawnIn(dir);
    await spawned.ready;
    const client = await connectTo(spawned.url, "nokey_user");
    client.send({ message: "no key check" });
    const frame = await client.next();
    assert.deepEqual(Object.keys(frame), ["error", "code"]);
    assert.match(String(frame.error), /^An error occurred: /);
    assert.match(String(frame.error), /mcp_agent\.secrets\.yaml/);
    assert.match(String(frame.error), /OPENAI_API_KEY/);
    assert.ok(!model.requests.some((request) => lastUserText(request) === "no key check"), "no request without a key");
    await client.close();
    await stop(spawned);
  });

  // ---- point 23: logging, end to end ---------------------------------------------------------

  test("file logging: JSON lines with timestamp, level, event for the whole life of the server", async () => {
    const dir = configDir({
      config: modelConfig({
        logger: { transports: ["file"], level: "debug", path_settings: { path_pattern: "logs/run-{unique_id}.jsonl" } },
        mcp: { servers: { test: testServerEntry } },
      }),
      secrets: { openai: { api_key: "sk-test-logging" } },
    });
    assert.equal(existsSync(path.join(dir, "logs")), false);
    const spawned = spawnIn(dir);
    await spawned.ready;
    const client = await connectTo(spawned.url, "log_user");
    client.send({ message: USE_TOOL });
    assert.equal((await client.next()).message, "done");
    await client.close();
    // The server logs the disconnect once it has seen the socket close; no event reaches us for that.
    await until(async () => (await sessionInfo(spawned.url, "log_user")).open_sockets === 0, "the server to see the disconnect");
    await stop(spawned);

    // The pattern is relative to the config file's folder (the server ran in another folder),
    // and its folder was created.
    const file = onlyLogFile(dir, /^run-\d{8}_\d{6}\.jsonl$/);
    const text = readFileSync(file, "utf8");
    assert.ok(text.endsWith("\n"));
    const entries = lines(text).map((line) => JSON.parse(line) as Frame);
    for (const entry of entries) {
      assert.ok(!Number.isNaN(Date.parse(String(entry.timestamp))), JSON.stringify(entry));
      assert.ok(["debug", "info", "warn", "error"].includes(String(entry.level)), JSON.stringify(entry));
      assert.equal(typeof entry.event, "string");
    }
    const events = new Set(entries.map((entry) => entry.event));
    for (const event of [
      "server_start",
      "connect",
      "session_created",
      "mcp_server_ready",
      "turn_start",
      "tool_call",
      "turn_end",
      "disconnect",
      "server_stop",
    ]) {
      assert.ok(events.has(event), `event ${event} in ${[...events].join(",")}`);
    }
    const toolCall = entries.find((entry) => entry.event === "tool_call")!;
    assert.equal(typeof toolCall.duration_ms, "number");
    assert.equal(toolCall.ok, true);
    // File only: nothing on the console.
    assert.equal(spawned.stderr(), "");
    assert.equal(lines(spawned.stdout()).length, 1);
  });

  test("level filtering: level error writes no info or warning lines", async () => {
    const dir = configDir({
      config: modelConfig({
        logger: { transports: ["console", "file"], level: "error", path: "logs/filtered.jsonl" },
        // A failed MCP server is logged as a warning: it must not pass.
        mcp: { servers: { broken: { command: "definitely-not-installed-xyz" } } },
      }),
      secrets: { openai: { api_key: "sk-test-levels" } },
    });
    const spawned = spawnIn(dir);
    await spawned.ready;
    const client = await connectTo(spawned.url, "level_user");
    client.send({ message: "hi" });
    assert.equal((await client.next()).message, "echo: hi");
    await client.close();
    await stop(spawned);
    const logPath = path.join(dir, "logs/filtered.jsonl");
    assert.ok(existsSync(logPath));
    assert.deepEqual(
      readLog(logPath).filter((entry) => entry.level !== "error"),
      [],
    );
    assert.equal(spawned.stderr(), "");
  });

  test("console logging: JSON lines on stderr, only the banner on stdout, no log folder", async () => {
    const dir = configDir({
      config: modelConfig({ logger: { transports: ["console"], level: "info" } }),
      secrets: { openai: { api_key: "sk-test-console" } },
    });
    const spawned = spawnIn(dir);
    await spawned.ready;
    const client = await connectTo(spawned.url, "console_user");
    client.send({ message: "hi" });
    assert.equal((await client.next()).message, "echo: hi");
    await client.close();
    await stop(spawned);

    const out = lines(spawned.stdout());
    assert.equal(out.length, 1, spawned.stdout());
    assert.match(out[0]!, /listening on http:\/\/127\.0\.0\.1:\d+/);
    const entries = lines(spawned.stderr()).map((line) => JSON.parse(line) as Frame);
    const events = entries.map((entry) => entry.event);
    for (const event of ["server_start", "connect", "turn_start", "turn_end", "server_stop"]) assert.ok(events.includes(event), event);
    assert.ok(entries.every((entry) => entry.level !== "debug"));
    assert.equal(existsSync(path.join(dir, "logs")), false);
  });

  test("the API key never reaches a log, stderr, or the error frame, even in a model error", async () => {
    const dir = configDir({
      config: modelConfig({ logger: { transports: ["console", "file"], level: "debug", path: "logs/secret.jsonl" } }),
      secrets: { openai: { api_key: API_KEY } },
    });
    const spawned = spawnIn(dir);
    await spawned.ready;
    const client = await connectTo(spawned.url, "secret_user");
    client.send({ message: CAUSE_401 });
    const frame = await client.next();
    assert.deepEqual(Object.keys(frame), ["error", "code"]);
    assert.match(String(frame.error), /^An error occurred: .*401/);
    assert.ok(!String(frame.error).includes(API_KEY), String(frame.error));
    assert.equal(model.requests.find((request) => lastUserText(request) === CAUSE_401)?.authorization, `Bearer ${API_KEY}`);
    await client.close();
    await stop(spawned);

    const logText = readFileSync(path.join(dir, "logs/secret.jsonl"), "utf8");
    // The model's error was logged (so it went through redaction), without the key.
    assert.match(logText, /Incorrect API key provided/);
    assert.match(spawned.stderr(), /Incorrect API key provided/);
    for (const [where, text] of [
      ["log file", logText],
      ["stderr", spawned.stderr()],
      ["stdout", spawned.stdout()],
    ] as const) {
      assert.ok(!text.includes(API_KEY), `${where} holds the API key`);
      assert.ok(!text.includes(API_KEY.slice(3)), `${where} holds most of the API key`);
    }
  });
});

test("every value in the secrets file (and the token) is treated as a secret and redacted from logs", () => {
  const config = parseConfig(
    { file: "mcp_agent.config.yaml", text: "mcp:\n  servers:\n    x:\n      command: some-server\n" },
    {
      file: "mcp_agent.secrets.yaml",
      text: "openai:\n  api_key: sk-secret-key-123456\nmcp:\n  servers:\n    x:\n      env:\n        SERVICE_TOKEN: tok-abcdef-98765\n",
    },
    { MCP_AGENT_AUTH_TOKEN: "shared-token-xyz" },
    "/tmp",
  );
  assert.ok(config.secretValues.includes("sk-secret-key-123456"));
  assert.ok(config.secretValues.includes("tok-abcdef-98765"));
  assert.ok(config.secretValues.includes("shared-token-xyz"));
  const lines: string[] = [];
  const sink = new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) });
  const logger = createLogger({ level: "debug", console: true, consoleStream: sink, secrets: config.secretValues });
  logger.info("leak_attempt", { env: "SERVICE_TOKEN=tok-abcdef-98765", auth: "Bearer shared-token-xyz" });
  assert.doesNotMatch(lines.join(""), /tok-abcdef-98765|shared-token-xyz/);
  assert.match(lines.join(""), /\[REDACTED\]/);
});

test("MCP_AGENT_AUTH_TOKEN sets server.auth_token; the file's value wins", () => {
  const parse = (text: string, env: Record<string, string>) => parseConfig({ file: "c.yaml", text }, undefined, env, "/tmp");
  assert.equal(parse("{}", {}).server.auth_token, undefined);
  assert.equal(parse("{}", { MCP_AGENT_AUTH_TOKEN: "from-env" }).server.auth_token, "from-env");
  assert.equal(parse("server: {auth_token: from-file}", { MCP_AGENT_AUTH_TOKEN: "from-env" }).server.auth_token, "from-file");
  assert.equal(parse("{}", { MCP_AGENT_AUTH_TOKEN: "" }).server.auth_token, undefined);
});

test("request_timeout_seconds is 60 and max_retries 2 by default", () => {
  const config = parseConfig({ file: "c.yaml", text: "{}" }, undefined, {}, "/tmp");
  assert.equal(config.openai.request_timeout_seconds, 60);
  assert.equal(config.openai.max_retries, 2);
  assert.equal(config.server.headers_timeout_seconds, 10);
  assert.equal(config.server.request_timeout_seconds, 30);
  assert.equal(config.server.ping_interval_seconds, 30);
  const defaults = {
    max_payload_bytes: 1024 * 1024,
    max_message_chars: 32_000,
    max_sessions: 2000,
    max_sockets_per_user: 8,
    max_queued_turns: 16,
    messages_per_minute: 30,
    message_burst: 10,
    max_tool_result_chars: 100_000,
    mcp_max_restarts: 3,
    send_buffer_soft_bytes: 256 * 1024,
    send_buffer_hard_bytes: 4 * 1024 * 1024,
  };
  for (const [key, value] of Object.entries(defaults)) assert.equal(config.limits[key as keyof typeof defaults], value, `limits.${key}`);
});
