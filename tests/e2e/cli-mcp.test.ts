// The MCP client in the CLI (mcp-agent-client on a pseudo-terminal, through `script`), against the real
// server, the scripted model and server-everything over stdio: progress on the tool's line, an
// elicitation asked field by field, and a sampling request answered like an approval.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { baseConfig, ROOT, startServer, type RunningServer } from "../helpers/harness.ts";
import { startModelServer, toolDirective, type ChatRequest, type ModelServer } from "../helpers/model-server.ts";

const CLIENT = path.join(ROOT, "client.ts");
const EVERYTHING = path.join(ROOT, "node_modules/@modelcontextprotocol/server-everything/dist/index.js");

function responder(request: ChatRequest) {
  if (request.messages[0]?.content === "You are a helpful test server.") return { content: "SAMPLED-IN-CLI" };
  return toolDirective(request) ?? { content: "no script" };
}

/** The client on a pty; `expect` waits for output past what earlier expects consumed. */
class Terminal {
  readonly child: ChildProcess;
  output = "";
  #cursor = 0;
  #wake: (() => void) | undefined;

  constructor(args: string[]) {
    const quote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;
    const command = [process.execPath, "--import", "tsx", CLIENT, ...args].map(quote).join(" ");
    this.child = spawn("script", ["-qfec", command, "/dev/null"], { env: { ...process.env, TERM: "xterm", NO_COLOR: "1" } });
    this.child.stdout?.on("data", (chunk: Buffer) => {
      this.output += chunk.toString();
      this.#wake?.();
    });
  }

  async expect(pattern: RegExp, timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = pattern.exec(this.output.slice(this.#cursor));
      if (match) {
        this.#cursor += match.index + match[0].length;
        return match[0];
      }
      if (Date.now() > deadline) throw new Error(`no ${pattern} within ${timeoutMs} ms; output:\n${this.output.slice(this.#cursor)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now());
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  write(text: string): void {
    this.child.stdin?.write(text);
  }

  async quit(): Promise<number | null> {
    const exited = new Promise<number | null>((resolve) => this.child.once("exit", (code) => resolve(code)));
    this.write("quit\r");
    return exited;
  }
}

let model: ModelServer;
let running: RunningServer;

before(async () => {
  model = await startModelServer({ responder });
  running = await startServer({
    config: baseConfig(
      model.baseUrl,
      { everything: { command: process.execPath, args: [EVERYTHING, "stdio"] } },
      { agent: { approval_timeout_seconds: 60 }, limits: { message_burst: 100, messages_per_minute: 1000 } },
    ),
    secrets: { openai: { api_key: "sk-test-cli-mcp" } },
  });
});
after(async () => {
  await running.close();
  await model.close();
});

test("the CLI shows progress on the tool's line, asks an elicitation field by field, and answers sampling like an approval", async () => {
  const term = new Terminal(["--url", running.url, "--user", "cli_mcp"]);
  await term.expect(/you> /);

  term.write('CALL everything_trigger-long-running-operation {"duration":1,"steps":4}\r');
  await term.expect(
    /⚙ everything_trigger-long-running-operation \{"duration":1,"steps":4\} … 1\/4 \(25%\) 2\/4 \(50%\) 3\/4 \(75%\)[^\n]* ok \d+ ms/,
  );
  await term.expect(/agent> RESULT Long running operation completed/);
  await term.expect(/you> /);

  term.write("CALL everything_trigger-elicitation-request {}\r");
  await term.expect(/\? everything asks: Please provide inputs for the following fields:/);
  await term.expect(/Your full, legal name/);
  await term.expect(/String \*> /);
  // Required: an empty line is asked again.
  term.write("\r");
  await term.expect(/"String" is required/);
  await term.expect(/String \*> /);
  term.write("Ada Lovelace\r");
  await term.expect(/Boolean> /);
  term.write("y\r");
  // The remaining fields keep their defaults or are skipped; a wrong value is asked again.
  for (const prompt of ["String with default", "String with email format"]) {
    await term.expect(new RegExp(`${prompt}> `));
    term.write("\r");
  }
  await term.expect(/String with uri format> /);
  term.write("\r");
  await term.expect(/String with date format> /);
  term.write("\r");
  await term.expect(/Integer> /);
  term.write("500\r");
  await term.expect(/"Integer" must be at most 100/);
  await term.expect(/Integer> /);
  term.write("7\r");
  for (let remaining = 0; remaining < 6; remaining++) {
    await term.expect(/> /);
    term.write("\r");
  }
  await term.expect(/✔ answered/);
  await term.expect(/agent> RESULT [^\n]*User provided the requested information/);
  await term.expect(/you> /);
  const last = model.requests.at(-1);
  const tool = [...(last?.messages ?? [])].reverse().find((message) => message.role === "tool");
  assert.match(String(tool?.content), /Name: Ada Lovelace\n- Agreed to terms: true/);
  assert.match(String(tool?.content), /Favorite Integer: 7/);

  term.write('CALL everything_trigger-sampling-request {"prompt":"a limerick"}\r');
  await term.expect(/⚠ MCP server everything asks to use the model/);
  await term.expect(/system: You are a helpful test server\./);
  await term.expect(/user: Resource trigger-sampling-request context: a limerick/);
  await term.expect(/allow everything:sampling\?/);
  await term.expect(/approve\? \[y\/n\/a\]> /);
  term.write("y\r");
  await term.expect(/✔ everything:sampling approved/);
  await term.expect(/agent> RESULT LLM sampling result:[^]*"text": "SAMPLED-IN-CLI"/);
  await term.expect(/you> /);
  assert.equal(await term.quit(), 0);
});
