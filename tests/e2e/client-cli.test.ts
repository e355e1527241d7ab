// The command-line client (client.ts, `npm run client`, `npx mcp-agent-client`), run as
// a real process against the real server and the scripted model server; the interactive mode
// through a pseudo-terminal made by util-linux `script`.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import type WebSocket from "ws";
import { WebSocketServer } from "ws";
import { afterTool, echoResponder, lastUserText, startModelServer, type ModelServer } from "../helpers/model-server.ts";
import { baseConfig, connect, ROOT, startServer, testServerEntry, until, type RunningServer } from "../helpers/harness.ts";

const CLIENT = path.join(ROOT, "client.ts");
const SGR = new RegExp(String.raw`\u001b\[[0-9;]*m`);

let model: ModelServer;
let running: RunningServer;
const children = new Set<ChildProcess>();

before(async () => {
  model = await startModelServer();
  // No MCP servers here: each new user would start its own. The tool test has its own server.
  running = await startServer({ config: baseConfig(model.baseUrl), secrets: { openai: { api_key: "sk-test" } } });
});
after(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await running.close();
  await model.close();
});

// ---- a spawned client --------------------------------------------------------------------------

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A client process whose output is awaited by pattern, never by sleeping. */
class ClientProcess {
  readonly child: ChildProcess;
  stdout = "";
  stderr = "";
  /** Where the next `expect` starts looking in stdout, so a repeated prompt is a new match. */
  #cursor = 0;
  #listeners = new Set<() => void>();
  readonly exited: Promise<Finished>;

  constructor(command: string, args: string[], env: Record<string, string>) {
    this.child = spawn(command, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env } });
    children.add(this.child);
    this.child.stdout?.on("data", (chunk: Buffer) => {
      this.stdout += chunk.toString();
      this.#notify();
    });
    this.child.stderr?.on("data", (chunk: Buffer) => {
      this.stderr += chunk.toString();
      this.#notify();
    });
    this.exited = new Promise((resolve) =>
      this.child.once("close", (code) => {
        children.delete(this.child);
        this.#notify();
        resolve({ code, stdout: this.stdout, stderr: this.stderr });
      }),
    );
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }

  /** Waits until stdout after the cursor matches; moves the cursor past the match. */
  async expect(pattern: RegExp, timeoutMs = 15000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = pattern.exec(this.stdout.slice(this.#cursor));
      if (found) {
        this.#cursor += found.index + found[0].length;
        return found;
      }
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`client exited before ${pattern} appeared.\nstdout: ${JSON.stringify(this.stdout)}\nstderr: ${this.stderr}`);
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0)
        throw new Error(`no ${pattern} within ${timeoutMs} ms.\nstdout: ${JSON.stringify(this.stdout)}\nstderr: ${this.stderr}`);
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.#listeners.delete(done);
          resolve();
        };
        const timer = setTimeout(done, remaining);
        this.#listeners.add(done);
      });
    }
  }

  /** Stdout after the cursor (what `expect` has not consumed yet). */
  get unread(): string {
    return this.stdout.slice(this.#cursor);
  }

  write(text: string): void {
    this.child.stdin?.write(text);
  }

  end(text?: string): void {
    this.child.stdin?.end(text);
  }

  async finished(timeoutMs = 20000): Promise<Finished> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`client did not exit within ${timeoutMs} ms.\nstdout: ${this.stdout}\nstderr: ${this.stderr}`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

function startClient(args: string[], env: Record<string, string> = {}): ClientProcess {
  return new ClientProcess(process.execPath, ["--import", "tsx", CLIENT, ...args], env);
}

/** Runs the client to the end with `input` on stdin (empty when not given). */
async function runClient(args: string[], options: { input?: string; env?: Record<string, string> } = {}): Promise<Finished> {
  const client = startClient(args, options.env);
  client.end(options.input ?? "");
  return client.finished();
}

/** `--url` and `--user` for the shared server. */
function at(user: string, server: { url: string } = running): string[] {
  return ["--url", server.url, "--user", user];
}

const shellQuote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;

/** The client on a pseudo-terminal: `script` runs it with a pty as stdin and stdout. */
function startInteractive(args: string[], env: Record<string, string> = {}): ClientProcess {
  const command = [process.execPath, "--import", "tsx", CLIENT, ...args].map(shellQuote).join(" ");
  return new ClientProcess("script", ["-qfec", command, "/dev/null"], { TERM: "xterm", ...env });
}

/** A model reply that calls the test server's echo tool once, then answers. */
function toolThenAnswer(answer: string): void {
  model.setResponder((request) =>
    afterTool(request) ? { content: answer } : { toolCalls: [{ name: "test_echo", arguments: { text: "hi" } }] },
  );
}

function resetModel(): void {
  model.setResponder(echoResponder);
}

/** A port nothing listens on: one that a server just gave back. */
async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

// ---- scripting ---------------------------------------------------------------------------------

describe("scripting", () => {
  test("--help prints the usage and exits 0", async () => {
    const { code, stdout, stderr } = await runClient(["--help"]);
    assert.equal(code, 0);
    assert.match(stdout, /^Usage: mcp-agent-client/);
    assert.match(stdout, /--timeout SECONDS/);
    assert.match(stdout, /--approve-all[\s\S]*--deny-all[\s\S]*\$MCP_AGENT_AUTH_TOKEN/);
    assert.equal(stderr, "");
  });

  test("one -m: the answer alone on stdout, exit 0", async () => {
    resetModel();
    const { code, stdout, stderr } = await runClient([...at("one_shot"), "-m", "hello"]);
    assert.equal(stderr, "");
    assert.equal(stdout, "echo: hello\n");
    assert.equal(code, 0);
  });

  test("repeated -m: sent one after another, both answers in order", async () => {
    // The first answer is slow: if the client did not wait for it, the second would overtake.
    model.setResponder((request) => {
      const text = String(request.messages.at(-1)?.content);
      return { content: `echo: ${text}`, delayMs: text === "first" ? 300 : 0 };
    });
    const before = model.requests.length;
    const { code, stdout } = await runClient([...at("repeat"), "-m", "first", "--message", "second"]);
    assert.equal(code, 0);
    assert.equal(stdout, "echo: first\necho: second\n");
    const asked = model.requests.slice(before).map((request) => request.messages.at(-1)?.content);
    assert.deepEqual(asked, ["first", "second"]);
    // The second request carried the first turn as history: it was sent after the first ended.
    assert.ok(model.requests.at(-1)?.messages.some((message) => message.content === "echo: first"));
  });

  test("stdin lines are the messages when no -m is given; blank lines are skipped", async () => {
    resetModel();
    const { code, stdout, stderr } = await runClient(at("piped"), { input: "one\n\n   \r\ntwo\r\nthree" });
    assert.equal(stderr, "");
    assert.equal(stdout, "echo: one\necho: two\necho: three\n");
    assert.equal(code, 0);
  });

  test("-m wins over stdin", async () => {
    resetModel();
    const { stdout } = await runClient([...at("m_over_stdin"), "-m", "from-m"], { input: "from-stdin\n" });
    assert.equal(stdout, "echo: from-m\n");
  });

  test("--json prints every frame as one JSON line: welcome, turn frames, deltas, answer", async () => {
    model.setResponder(() => ({ content: "streamed in pieces", chunkChars: 3 }));
    const { code, stdout } = await runClient([...at("json_user"), "--json", "-m", "hi"]);
    assert.equal(code, 0);
    const frames = stdout
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.equal(frames[0]?.type, "welcome");
    assert.equal(frames[0]?.stream, true);
    assert.equal(frames[0]?.user_id, "json_user");
    const types = frames.map((frame) => frame.type);
    assert.ok(types.indexOf("turn_start") > 0 && types.indexOf("turn_start") < types.indexOf("delta"), types.join(","));
    assert.ok(types.filter((type) => type === "delta").length >= 3, types.join(","));
    assert.equal(types.at(-1), "answer");
    assert.equal(frames.at(-1)?.message, "streamed in pieces");
    const text = frames
      .filter((frame) => frame.type === "delta")
      .map((frame) => frame.text)
      .join("");
    assert.equal(text, "streamed in pieces");
  });

  test("another tab's turn of the same user is not taken for ours", async () => {
    // The other tab's turn runs until the client has joined and sent its own message.
    let release = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    model.setResponder(async (request) => {
      if (lastUserText(request) !== "from the other tab") return { content: `echo: ${lastUserText(request)}` };
      await released;
      return { content: "the other answer" };
    });
    const tab = await connect(running.wsUrl("two_tabs", "?stream=1"));
    const seen = model.requests.length;
    tab.send({ message: "from the other tab" });
    await model.waitForRequests(seen + 1);
    // Joining mid-turn, the client is sent that turn's frames first; its own turn runs next.
    const client = startClient([...at("two_tabs"), "--json", "-m", "mine"]);
    client.end();
    await client.expect(/"type":"turn_start"[^\n]*"input":"from the other tab"/);
    release();
    const { code, stdout } = await client.finished();
    assert.equal(code, 0);
    const frames = stdout
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const inputs = frames.filter((frame) => frame.type === "turn_start").map((frame) => frame.input);
    assert.deepEqual(inputs, ["from the other tab", "mine"]);
    assert.ok(frames.some((frame) => frame.type === "answer" && frame.message === "the other answer"));
    assert.equal(frames.at(-1)?.message, "echo: mine");
    await tab.close();
    resetModel();
  });

  test("without --user the user is $USER, else test_user", async () => {
    resetModel();
    const withUser = await runClient(["--url", running.url, "--json", "-m", "x"], { env: { USER: "env_user" } });
    assert.equal((JSON.parse(withUser.stdout.split("\n")[0] ?? "") as { user_id: string }).user_id, "env_user");
    const without = await runClient(["--url", running.url, "--json", "-m", "x"]);
    assert.equal((JSON.parse(without.stdout.split("\n")[0] ?? "") as { user_id: string }).user_id, "test_user");
  });

  test("exit 1: an error frame goes to stderr, the remaining messages still go out", async () => {
    resetModel();
    model.queue({ status: 500, errorMessage: "the model broke" });
    const { code, stdout, stderr } = await runClient([...at("errors"), "-m", "bad", "-m", "good"]);
    assert.equal(stdout, "echo: good\n");
    assert.match(stderr, /✖ "bad": An error occurred: .*500/);
    assert.equal(code, 1);
  });

  test("exit 2: usage errors print the reason and the usage to stderr, nothing to stdout", async () => {
    const cases = [["--bogus"], ["--timeout", "soon"], ["--user", "no/slash"], ["--url", "ftp://x"], ["-m"], ["stray"]];
    // Each run fails before connecting, so they can all run at once.
    const results = await Promise.all(cases.map((args) => runClient(args)));
    for (const [index, args] of cases.entries()) {
      const { code, stdout, stderr } = results[index] ?? { code: null, stdout: "", stderr: "" };
      assert.equal(code, 2, args.join(" "));
      assert.equal(stdout, "");
      assert.match(stderr, /^mcp-agent-client: .+\n\nUsage: mcp-agent-client/, args.join(" "));
    }
  });

  test("exit 3: nothing listening names the URL and the cause", async () => {
    const port = await closedPort();
    const { code, stdout, stderr } = await runClient(["--url", `ws://127.0.0.1:${port}`, "--user", "alice", "-m", "hi"]);
    assert.equal(code, 3);
    assert.equal(stdout, "");
    assert.equal(stderr, `✖ cannot connect to ws://127.0.0.1:${port}/ws/alice: connect ECONNREFUSED 127.0.0.1:${port}\n`);
  });

  test("exit 3: an HTTP refusal of the upgrade names the status and the server's error", async () => {
    const { code, stderr } = await runClient(["--url", `${running.url}/prefix`, "--user", "alice", "-m", "hi"]);
    assert.equal(code, 3);
    const wsBase = running.url.replace(/^http/, "ws");
    assert.equal(
      stderr,
      `✖ cannot connect to ${wsBase}/prefix/ws/alice: HTTP 404 Not Found: not found: /prefix/ws/alice; connect to /ws/<user_id>\n`,
    );
  });

  test("exit 3: the server goes away in the middle of a turn", async () => {
    const own = await startServer({ config: baseConfig(model.baseUrl), secrets: { openai: { api_key: "sk-test" } } });
    try {
      model.queue({ hang: true });
      const seen = model.requests.length;
      const client = startClient([...at("dropped", own), "-m", "never answered"]);
      client.end();
      await model.waitForRequests(seen + 1);
      await own.close();
      const { code, stdout, stderr } = await client.finished();
      assert.equal(stdout, "");
      const wsUrl = own.wsUrl("dropped");
      assert.ok(stderr.startsWith(`✖ connection to ${wsUrl} `), stderr);
      assert.match(stderr, /closed by the server: 1001 server shutting down|lost:/);
      assert.equal(code, 3);
    } finally {
      await own.close();
    }
  });

  test("exit 4: no answer within --timeout; the client cancels the turn before leaving", async () => {
    // A first message makes the session (and its MCP servers) ready, so the slow turn below
    // reaches the model well within the timeout.
    resetModel();
    assert.equal((await runClient([...at("slowpoke"), "-m", "warm up"])).code, 0);
    // A responder, not a queued reply: a reply left unused would answer some later test.
    model.setResponder(() => ({ hang: true }));
    const seen = model.requests.length;
    const aborted = model.aborted;
    const { code, stdout, stderr } = await runClient([...at("slowpoke"), "--timeout", "0.5", "-m", "take your time", "-m", "never sent"]);
    resetModel();
    assert.equal(code, 4);
    assert.equal(stdout, "");
    assert.match(stderr, /no answer within 0\.5 s to "take your time"; cancelled it/);
    // The cancel reached the server: the turn ended as cancelled, and a model call still open was aborted.
    const session = running.server.sessions.get("slowpoke");
    await until(
      () => session?.historyItems().some((item) => item.role === "user" && item.status === "cancelled") === true,
      "a cancelled turn",
    );
    await until(() => model.requests.length === seen || model.aborted > aborted, "the model request to be aborted");
    assert.ok(!model.requests.some((request) => request.messages.at(-1)?.content === "never sent"));
  });

  test("npx mcp-agent-client works in the project (the bin entry)", async (t) => {
    resetModel();
    // A private npm cache, offline: no lock shared with other npx runs, and never the registry.
    const cache = mkdtempSync(path.join(tmpdir(), "npx-cache-"));
    t.after(() => rmSync(cache, { recursive: true, force: true }));
    const env = { npm_config_cache: cache, npm_config_offline: "true" };
    const client = new ClientProcess("npx", ["mcp-agent-client", ...at("via_npx"), "-m", "through npx"], env);
    client.end();
    const { code, stdout, stderr } = await client.finished(60000);
    assert.equal(stderr, "");
    assert.equal(stdout, "echo: through npx\n");
    assert.equal(code, 0);
    const help = execFileSync("npx", ["mcp-agent-client", "--help"], { cwd: ROOT, encoding: "utf8", env: { ...process.env, ...env } });
    assert.match(help, /^Usage: mcp-agent-client/);
  });
});

// ---- a server that is not this one: seed-only, with a token -------------------------------------

describe("against a seed-only server that wants a token", () => {
  let server: http.Server;
  let url: string;
  const seen: { authorization: string | undefined; path: string | undefined }[] = [];

  before(async () => {
    // Like the original Python server: ignores ?stream=1, answers each message with one frame.
    // It also refuses an upgrade without the right bearer token, with a JSON reason.
    const wss = new WebSocketServer({ noServer: true });
    server = http.createServer();
    server.on("upgrade", (req, socket, head) => {
      seen.push({ authorization: req.headers.authorization, path: req.url });
      if (req.headers.authorization !== "Bearer s3cret") {
        const body = JSON.stringify({ error: "missing or wrong token" });
        socket.end(
          `HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
        );
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
        ws.send(JSON.stringify({ message: "Welcome! You are connected as user: seeder", user_id: "seeder", session_id: "s-1" }));
        ws.on("message", (data) => {
          const { message } = JSON.parse(data.toString()) as { message: string };
          if (message === "fail") ws.send(JSON.stringify({ error: "An error occurred: boom" }));
          else ws.send(JSON.stringify({ message: `seed: ${message}`, user_id: "seeder", session_id: "s-1" }));
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  test("exit 3 on 401, naming the status and the server's JSON error", async () => {
    const { code, stderr } = await runClient(["--url", url, "--user", "seeder", "-m", "hi"]);
    assert.equal(code, 3);
    assert.match(stderr, /cannot connect to ws:\/\/127\.0\.0\.1:\d+\/ws\/seeder: HTTP 401 Unauthorized: missing or wrong token/);
  });

  test("--token (or MCP_AGENT_TOKEN) sends the bearer header; seed frames answer one message each", async () => {
    const flag = await runClient(["--url", url, "--user", "seeder", "--token", "s3cret", "-m", "a", "-m", "fail", "-m", "b"]);
    assert.equal(flag.stdout, "seed: a\nseed: b\n");
    assert.match(flag.stderr, /✖ "fail": An error occurred: boom/);
    assert.equal(flag.code, 1);
    const fromEnv = await runClient(["--url", url, "--user", "seeder"], { input: "c\n", env: { MCP_AGENT_TOKEN: "s3cret" } });
    assert.equal(fromEnv.stdout, "seed: c\n");
    assert.equal(fromEnv.code, 0);
    // The server's own variable wins over the client's older name.
    const authEnv = await runClient(["--url", url, "--user", "seeder", "-m", "d"], {
      env: { MCP_AGENT_AUTH_TOKEN: "s3cret", MCP_AGENT_TOKEN: "wrong" },
    });
    assert.equal(authEnv.stdout, "seed: d\n");
    assert.equal(authEnv.code, 0);
    assert.equal(seen.at(-1)?.authorization, "Bearer s3cret");
    assert.equal(seen.at(-1)?.path, "/ws/seeder?stream=1");
  });

  test("interactive on a seed server: whole answers, errors marked, no /history", async () => {
    const client = startInteractive(["--url", url, "--user", "seeder", "--token", "s3cret"], { NO_COLOR: "1" });
    await client.expect(/this server does not stream/);
    await client.expect(/you> /);
    client.write("hi\r");
    await client.expect(/\[\d\d:\d\d:\d\d\] agent> seed: hi\r?\n/);
    await client.expect(/you> /);
    client.write("fail\r");
    await client.expect(/✖ An error occurred: boom/);
    await client.expect(/you> /);
    client.write("/history\r");
    await client.expect(/✖ history is not available/);
    await client.expect(/you> /);
    client.write("exit\r");
    assert.equal((await client.finished()).code, 0);
    client.end();
  });
});

// ---- interactive -------------------------------------------------------------------------------

describe("interactive (pseudo-terminal)", () => {
  before(() => {
    execFileSync("which", ["script"]);
  });

  test("prompt, streamed answer with a tool line, an error, help, /history, quit; NO_COLOR means no colour", async (t) => {
    const withTools = await startServer({
      config: baseConfig(model.baseUrl, { test: testServerEntry }),
      secrets: { openai: { api_key: "sk-test" } },
    });
    t.after(() => withTools.close());
    const client = startInteractive(at("tty_user", withTools), { NO_COLOR: "1" });
    await client.expect(/connected to .*\/ws\/tty_user as tty_user/);
    await client.expect(/you> /);

    // Streamed: the first piece is on screen while the rest is still on its way.
    model.setResponder(() => ({ content: "one two three four five", chunkChars: 4, chunkDelayMs: 250 }));
    client.write("hello\r");
    await client.expect(/\[\d\d:\d\d:\d\d\] agent> one /);
    assert.doesNotMatch(client.unread, /five/);
    await client.expect(/two three four five\r?\n/);
    await client.expect(/you> /);

    toolThenAnswer("the tool said hi");
    client.write("use a tool\r");
    await client.expect(/\[\d\d:\d\d:\d\d\] ⚙ test_echo \{"text":"hi"\} … ok \d+ ms\r?\n/);
    await client.expect(/agent> the tool said hi/);
    await client.expect(/you> /);

    model.queue({ status: 500, errorMessage: "model on fire" });
    client.write("break\r");
    await client.expect(/\[\d\d:\d\d:\d\d\] ✖ An error occurred: .*500/);
    await client.expect(/you> /);

    client.write("help\r");
    await client.expect(/Commands:[\s\S]*\/history[\s\S]*\/cancel[\s\S]*quit, exit/);
    await client.expect(/you> /);

    client.write("/history\r");
    await client.expect(/── history: \d+ items ──/);
    await client.expect(/you> hello\r?\n/);
    await client.expect(/agent> one two three four five/);
    await client.expect(/⚙ test_echo \{"text":"hi"\} … ok/);
    await client.expect(/you> break \(error\)/);
    await client.expect(/── end of history ──/);
    await client.expect(/you> /);

    client.write("quit\r");
    const { code, stdout } = await client.finished();
    assert.equal(code, 0);
    assert.doesNotMatch(stdout, SGR, "no colour codes with NO_COLOR");
    client.end();
  });

  test("colour on a terminal; Ctrl+C cancels the running turn, a second Ctrl+C quits", async () => {
    const client = startInteractive(at("tty_cancel"));
    await client.expect(/you> /);
    model.queue({ hang: true });
    const seen = model.requests.length;
    const aborted = model.aborted;
    client.write("slow one\r");
    await model.waitForRequests(seen + 1);
    client.write("\x03");
    await client.expect(/cancelling/);
    await client.expect(/⊘ turn cancelled/);
    await until(() => model.aborted > aborted, "the model request to be aborted");
    await client.expect(/you> /);
    client.write("\x03");
    const { code, stdout } = await client.finished();
    assert.equal(code, 0);
    assert.match(stdout, SGR, "colour codes on a terminal");
    client.end();
  });

  test("Ctrl+C when idle clears the line and a second one quits; Ctrl+D quits; a drop exits 3", async () => {
    const twice = startInteractive(at("tty_twice"), { NO_COLOR: "1" });
    await twice.expect(/you> /);
    twice.write("half a thought");
    await twice.expect(/half a thought/);
    twice.write("\x03");
    await twice.expect(/press Ctrl\+C again or Ctrl\+D to quit/);
    await twice.expect(/you> /);
    // The typed text was dropped: Enter now sends nothing, and the prompt just comes back.
    twice.write("\r");
    await twice.expect(/you> /);
    twice.write("\x03");
    assert.equal((await twice.finished()).code, 0);
    assert.ok(!model.requests.some((request) => request.messages.at(-1)?.content === "half a thought"));
    twice.end();

    const quitter = startInteractive(at("tty_eof"), { NO_COLOR: "1" });
    await quitter.expect(/you> /);
    quitter.write("\x04");
    assert.equal((await quitter.finished()).code, 0);
    quitter.end();

    const own = await startServer({ config: baseConfig(model.baseUrl), secrets: { openai: { api_key: "sk-test" } } });
    try {
      const client = startInteractive(at("tty_drop", own), { NO_COLOR: "1" });
      await client.expect(/you> /);
      await own.close();
      await client.expect(/✖ connection to ws:\/\/127\.0\.0\.1:\d+\/ws\/tty_drop (closed by the server: 1001|lost)/);
      assert.equal((await client.finished()).code, 3);
      client.end();
    } finally {
      await own.close();
    }
  });
});

// ---- tool calls that wait for approval ----------------------------------------------

describe("approvals", () => {
  /** test_echo needs approval; the approval timeout is the default (120 s): nobody waits for it here. */
  let guarded: RunningServer;
  /** The same, with a short approval timeout, for the call that nobody answers. */
  let hasty: RunningServer;

  before(async () => {
    const servers = { test: { ...testServerEntry, require_approval: ["echo"] } };
    const secrets = { openai: { api_key: "sk-test" } };
    [guarded, hasty] = await Promise.all([
      startServer({ config: baseConfig(model.baseUrl, servers), secrets }),
      startServer({ config: baseConfig(model.baseUrl, servers, { agent: { approval_timeout_seconds: 0.5 } }), secrets }),
    ]);
  });
  after(async () => {
    await Promise.all([guarded.close(), hasty.close()]);
    resetModel();
  });

  /** "echo X" makes the model call test_echo with X; after the tool it repeats the tool's result. */
  function echoThroughTool(afterToolDelay?: Promise<void>): void {
    model.setResponder(async (request) => {
      if (afterTool(request)) {
        await afterToolDelay;
        return { content: `MODEL SAW: ${String(request.messages.at(-1)?.content)}` };
      }
      const text = lastUserText(request);
      if (text.startsWith("echo ")) return { toolCalls: [{ name: "test_echo", arguments: { text: text.slice(5) } }] };
      return { content: `echo: ${text}` };
    });
  }

  test("--approve-all: the tool runs and the answer has its result; --json shows the approval frames", async () => {
    echoThroughTool();
    const plain = await runClient([...at("approve_all", guarded), "--approve-all", "-m", "echo hello"]);
    assert.equal(plain.stderr, "");
    assert.equal(plain.stdout, "MODEL SAW: echo:hello\n");
    assert.equal(plain.code, 0);

    const json = await runClient([...at("approve_all", guarded), "--approve-all", "--json", "-m", "echo again"]);
    assert.equal(json.code, 0);
    const frames = json.stdout
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const request = frames.find((frame) => frame.type === "approval_request");
    assert.equal(request?.name, "test_echo");
    assert.deepEqual(request?.arguments, { text: "again" });
    assert.equal(request?.timeout_ms, 120000);
    const resolved = frames.find((frame) => frame.type === "approval_resolved");
    assert.deepEqual([resolved?.call_id, resolved?.approved, resolved?.by], [request?.call_id, true, "user"]);
    assert.equal(frames.at(-1)?.message, "MODEL SAW: echo:again");
  });

  test("--deny-all: the model is told 'denied by the user: denied by --deny-all'", async () => {
    echoThroughTool();
    const { code, stdout, stderr } = await runClient([...at("deny_all", guarded), "--deny-all", "-m", "echo secret"]);
    assert.equal(stderr, "");
    assert.equal(stdout, "MODEL SAW: Error: denied by the user: denied by --deny-all\n");
    assert.equal(code, 0);
  });

  test("--approve-all with --deny-all is a usage error (exit 2)", async () => {
    const { code, stdout, stderr } = await runClient([...at("both_flags", guarded), "--approve-all", "--deny-all", "-m", "echo x"]);
    assert.equal(code, 2);
    assert.equal(stdout, "");
    assert.match(stderr, /^mcp-agent-client: --approve-all and --deny-all cannot be used together\n\nUsage:/);
  });

  test("a script without either flag does not answer: it says so, the server's timeout denies, exit 0", async () => {
    echoThroughTool();
    const { code, stdout, stderr } = await runClient([...at("no_answer", hasty), "-m", "echo waiting"]);
    assert.match(stdout, /^MODEL SAW: Error: denied: nobody answered the approval request within [\d.]+ s\n$/);
    assert.match(
      stderr,
      /^note: "echo waiting": the tool call test_echo \{"text":"waiting"\} waits for approval from another client of user no_answer .*--approve-all or --deny-all.*the server denies the call\n$/,
    );
    assert.equal(code, 0);
  });

  test("interactive: asked y/n/a; 'n nope' denies with the reason, 'y' approves, Ctrl+C cancels a waiting call", async () => {
    echoThroughTool();
    const client = startInteractive(at("tty_approver", guarded), { NO_COLOR: "1" });
    await client.expect(/you> /);

    client.write("echo secret\r");
    await client.expect(
      /\[\d\d:\d\d:\d\d\] ⚠ approve test_echo \{"text":"secret"\}\? \[y\]es \/ \[n\]o \/ \[a\]lways \(waits up to 120 s\)\r?\n/,
    );
    await client.expect(/approve\? \[y\/n\/a\]> /);
    // Something that is not an answer is asked again.
    client.write("maybe\r");
    await client.expect(/✖ answer y \(yes\), n \(no/);
    await client.expect(/approve\? \[y\/n\/a\]> /);
    client.write("n nope\r");
    await client.expect(/⊘ test_echo denied by the user: nope\r?\n/);
    await client.expect(/⚙ test_echo \{"text":"secret"\} … ✖ failed \d+ ms: denied by the user: nope/);
    await client.expect(/agent> MODEL SAW: Error: denied by the user: nope\r?\n/);
    await client.expect(/you> /);

    client.write("echo again\r");
    await client.expect(/⚠ approve test_echo \{"text":"again"\}\?/);
    await client.expect(/approve\? \[y\/n\/a\]> /);
    client.write("y\r");
    await client.expect(/✔ test_echo approved\r?\n/);
    await client.expect(/⚙ test_echo \{"text":"again"\} … ok \d+ ms/);
    await client.expect(/agent> MODEL SAW: echo:again\r?\n/);
    await client.expect(/you> /);

    client.write("echo stop\r");
    await client.expect(/approve\? \[y\/n\/a\]> /);
    client.write("\x03");
    await client.expect(/cancelling/);
    await client.expect(/⊘ test_echo denied: the turn was cancelled/);
    await client.expect(/⊘ turn cancelled/);
    await client.expect(/you> /);

    client.write("quit\r");
    assert.equal((await client.finished()).code, 0);
    client.end();
    // The answers went to the approvals, never to the agent as messages.
    for (const word of ["maybe", "n nope", "y"]) assert.ok(!model.requests.some((request) => lastUserText(request) === word), word);
  });

  test("interactive: another tab answers first; an answer typed after that is late and only shown dimmed", async () => {
    let release = () => {};
    echoThroughTool(new Promise<void>((resolve) => (release = resolve)));
    const tab = await connect(guarded.wsUrl("tty_race", "?stream=1"));
    const client = startInteractive(at("tty_race", guarded), { NO_COLOR: "1" });
    try {
      await client.expect(/you> /);
      client.write("echo race\r");
      await client.expect(/approve\? \[y\/n\/a\]> /);
      const request = await tab.nextMatching((frame) => frame.type === "approval_request");
      tab.send({ type: "approval", call_id: request.call_id, approved: false, reason: "tab says no" });
      await client.expect(/⊘ test_echo denied by the user: tab says no \(answered by another client\)\r?\n/);
      // The turn still runs (the model waits): a "y" now is the late answer, not a message.
      client.write("y\r");
      await client.expect(new RegExp(`no approval is waiting for call ${request.call_id}`));
      release();
      await client.expect(/agent> MODEL SAW: Error: denied by the user: tab says no\r?\n/);
      await client.expect(/you> /);
      client.write("quit\r");
      assert.equal((await client.finished()).code, 0);
      assert.ok(!model.requests.some((r) => lastUserText(r) === "y"), "the late y was not sent as a message");
    } finally {
      release();
      client.end();
      await tab.close();
    }
  });
});
