// A complete MCP client, against a real server nobody here wrote:
// @modelcontextprotocol/server-everything (a dev dependency) over stdio, SSE and streamable HTTP.
// Every tool it lists at its pinned version is called through a chat turn, and the tests assert on
// what the scripted model received and on the frames the user's socket got.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import net from "node:net";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { startModelServer, toolDirective, type ChatRequest, type ModelServer } from "../helpers/model-server.ts";
import {
  baseConfig,
  connectUser,
  readLog,
  ROOT,
  startServer,
  until,
  type Frame,
  type RunningServer,
  type TestClient,
} from "../helpers/harness.ts";

const EVERYTHING = path.join(ROOT, "node_modules/@modelcontextprotocol/server-everything/dist/index.js");
const SAMPLING_SYSTEM = "You are a helpful test server.";

/** The tools server-everything 2026.8.31 lists to a client that announces roots, sampling and elicitation. */
const EXPECTED_TOOLS = [
  "echo",
  "get-annotated-message",
  "get-env",
  "get-resource-links",
  "get-resource-reference",
  "get-structured-content",
  "get-sum",
  "get-tiny-image",
  "gzip-file-as-resource",
  "toggle-simulated-logging",
  "toggle-subscriber-updates",
  "trigger-long-running-operation",
  "get-roots-list",
  "trigger-elicitation-request",
  "trigger-url-elicitation",
  "trigger-sampling-request",
  "simulate-research-query",
];

async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Remote {
  child: ChildProcess;
  stop(): Promise<void>;
}

/** server-everything over HTTP as a child on `port`; resolves once it listens. */
async function startRemote(kind: "sse" | "streamableHttp", port: number): Promise<Remote> {
  const child = spawn(process.execPath, [EVERYTHING, kind], {
    env: { ...process.env, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = once(child, "exit");
  let output = "";
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (/running on port|listening on port/i.test(output)) resolve();
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", () => reject(new Error(`server-everything ${kind} exited: ${output}`)));
  });
  return {
    child,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

/** Sampling requests are answered as a model would; everything else follows the CALL/RESULT script. */
function responder(request: ChatRequest) {
  const system = request.messages[0];
  if (system?.role === "system" && system.content === SAMPLING_SYSTEM) {
    const prompt = request.messages.at(-1)?.content;
    return { content: `SAMPLED(${typeof prompt === "string" ? prompt : "?"})` };
  }
  return toolDirective(request) ?? { content: "no script" };
}

interface CallResult {
  frames: Frame[];
  /** The model request made right after the tool ran: what the model received. */
  request: ChatRequest;
  /** The tool message's text the model received. */
  toolText: string;
}

/** One chat turn that calls `tool`; `onFrame` may answer questions (elicitation, approval) as they come. */
async function callTool(
  client: TestClient,
  model: ModelServer,
  tool: string,
  args: Record<string, unknown>,
  onFrame: (frame: Frame) => void = () => undefined,
): Promise<CallResult> {
  const before = model.requests.length;
  client.send({ message: `CALL everything_${tool} ${JSON.stringify(args)}` });
  const frames: Frame[] = [];
  for (;;) {
    const frame = await client.next(30_000);
    frames.push(frame);
    onFrame(frame);
    if (frame.type === "answer" || frame.type === "error" || frame.type === "cancelled") break;
  }
  // The turn's last model call: the one that got the tool's result.
  const request = model.requests.slice(before).at(-1);
  assert.ok(request, `the model was called again after ${tool}: ${JSON.stringify(frames)}`);
  const toolMessage = [...request.messages].reverse().find((message) => message.role === "tool");
  return { frames, request, toolText: typeof toolMessage?.content === "string" ? toolMessage.content : "" };
}

type Transport = "stdio" | "sse" | "streamable_http";

function suite(transport: Transport) {
  describe(`server-everything over ${transport}`, () => {
    let model: ModelServer;
    let running: RunningServer;
    let remote: Remote | undefined;
    let port = 0;

    before(async () => {
      model = await startModelServer({ responder });
      let entry: Record<string, unknown>;
      if (transport === "stdio") entry = { command: process.execPath, args: [EVERYTHING, "stdio"] };
      else {
        port = await freePort();
        remote = await startRemote(transport === "sse" ? "sse" : "streamableHttp", port);
        entry = { transport, url: `http://127.0.0.1:${port}/${transport === "sse" ? "sse" : "mcp"}` };
      }
      running = await startServer({
        config: baseConfig(
          model.baseUrl,
          { everything: { ...entry, sampling: "allow" } },
          { agent: { approval_timeout_seconds: 20 }, limits: { message_burst: 100, messages_per_minute: 1000 } },
        ),
        secrets: { openai: { api_key: "sk-test-everything" } },
      });
    });
    after(async () => {
      await running?.close();
      await remote?.stop();
      await model?.close();
    });

    test("every tool of server-everything works through a chat turn; the model receives the real content", async () => {
      const { client } = await connectUser(running, `user-${transport}`, "?stream=1");
      const workspace = path.join(running.configDir, "workspace", `user-${transport}`);

      // The tools offered to the model: all of them, named <server>_<tool>.
      const first = await callTool(client, model, "echo", { message: "hello everything" });
      assert.match(first.toolText, /Echo: hello everything/);
      const offered = (first.request.tools ?? []).map((tool) => tool.function.name).sort();
      assert.deepEqual(offered, EXPECTED_TOOLS.map((name) => `everything_${name}`).sort());

      // Images reach the model as image parts, and the page gets a thumbnail.
      const image = await callTool(client, model, "get-tiny-image", {});
      assert.match(image.toolText, /\[image 1: image\/png, .*attached below\]/);
      const attachment = image.request.messages.at(-1);
      assert.equal(attachment?.role, "user");
      assert.ok(Array.isArray(attachment?.content));
      const imagePart = attachment.content.find((part) => part.type === "image_url");
      assert.ok(imagePart && imagePart.type === "image_url" && imagePart.image_url.url.startsWith("data:image/png;base64,"));
      const end = image.frames.find((frame) => frame.type === "tool_end");
      assert.ok(Array.isArray(end?.images) && String(end.images[0]).startsWith("data:image/png;base64,"));

      const annotated = await callTool(client, model, "get-annotated-message", { messageType: "success", includeImage: true });
      assert.match(annotated.toolText, /Operation completed successfully/);
      assert.match(annotated.toolText, /\[image 1: image\/png/);

      const env = await callTool(client, model, "get-env", {});
      assert.match(env.toolText, /PATH/);

      // Resource links: URI, name and MIME type.
      const links = await callTool(client, model, "get-resource-links", { count: 2 });
      assert.match(links.toolText, /\[resource link demo:\/\/resource\/dynamic\/text\/2 \(name: Text Resource 2, type: text\/plain\)\]/);

      // An embedded text resource: its text, with its URI.
      const textResource = await callTool(client, model, "get-resource-reference", { resourceType: "Text", resourceId: 1 });
      assert.match(textResource.toolText, /\[resource demo:\/\/resource\/dynamic\/text\/1 \(text\/plain\)\]\n.*Resource 1/);
      // A binary resource: one line with URI, type and size.
      const blob = await callTool(client, model, "get-resource-reference", { resourceType: "Blob", resourceId: 1 });
      assert.match(blob.toolText, /\[binary resource demo:\/\/resource\/dynamic\/blob\/1: text\/plain, \d+ bytes\]/);

      const structured = await callTool(client, model, "get-structured-content", { location: "Chicago" });
      assert.match(structured.toolText, /"temperature"/);

      const sum = await callTool(client, model, "get-sum", { a: 2, b: 40 });
      assert.match(sum.toolText, /42/);

      const gzip = await callTool(client, model, "gzip-file-as-resource", {
        name: "hello.txt.gz",
        data: "data:text/plain;base64,aGVsbG8gd29ybGQ=",
        outputType: "resource",
      });
      assert.match(gzip.toolText, /\[binary resource \S*hello\.txt\.gz: application\/gzip, \d+ bytes\]/);
      const gzipLink = await callTool(client, model, "gzip-file-as-resource", { name: "link.gz", data: "data:text/plain;base64,aGk=" });
      assert.match(gzipLink.toolText, /\[resource link \S*link\.gz \(name: link\.gz, type: application\/gzip\)\]/);

      // Logging: the server's log notifications reach our log with its name, at the mapped level.
      const logging = await callTool(client, model, "toggle-simulated-logging", {});
      assert.match(logging.toolText, /Started simulated/);
      await until(
        () =>
          readLog(running.logPath).some(
            (line) => line.event === "mcp_server_log" && line.server === "everything" && line.level_mcp !== undefined,
          ),
        "a server log line in our log",
      );
      await callTool(client, model, "toggle-simulated-logging", {});

      const subscriber = await callTool(client, model, "toggle-subscriber-updates", {});
      assert.match(subscriber.toolText, /subscri/i);

      // Progress: tool_progress frames with a total, then the result.
      const long = await callTool(client, model, "trigger-long-running-operation", { duration: 1, steps: 4 });
      const progress = long.frames.filter((frame) => frame.type === "tool_progress");
      // The SDK handles notifications a tick after they arrive, so the last one can land after the
      // result and is dropped: the ones before it always arrive, in order, with the total.
      assert.ok(progress.length >= 3, JSON.stringify(progress));
      assert.deepEqual(
        progress.slice(0, 3).map((frame) => [frame.progress, frame.total]),
        [
          [1, 4],
          [2, 4],
          [3, 4],
        ],
      );
      assert.match(long.toolText, /Long running operation completed/);

      // Roots: the user's workspace folder as a file:// URI.
      const roots = await callTool(client, model, "get-roots-list", {});
      assert.ok(roots.toolText.includes(pathToFileURL(workspace).href), roots.toolText);

      // Sampling (policy allow here): the session's model answered the server's request.
      const sampling = await callTool(client, model, "trigger-sampling-request", { prompt: "say hi", maxTokens: 50 });
      assert.match(sampling.toolText, /SAMPLED\(Resource trigger-sampling-request context: say hi\)/);
      const samplingRequest = model.requests.find((request) => request.messages[0]?.content === SAMPLING_SYSTEM);
      assert.ok(samplingRequest);

      // Elicitation, form mode: the user's socket gets the fields, the answer goes back to the server.
      const form = await callTool(client, model, "trigger-elicitation-request", {}, (frame) => {
        if (frame.type !== "elicitation_request") return;
        const names = (frame.fields as { name: string }[]).map((field) => field.name);
        assert.ok(names.includes("name") && names.includes("untitledMultipleSelectEnum"));
        client.send({
          type: "elicitation",
          request_id: frame.request_id,
          action: "accept",
          content: { name: "Ada Lovelace", integer: "7" },
        });
      });
      assert.match(form.toolText, /User provided the requested information/);
      assert.match(form.toolText, /Name: Ada Lovelace/);
      assert.match(form.toolText, /Favorite Integer: 7/);
      assert.ok(form.frames.some((frame) => frame.type === "elicitation_resolved" && frame.action === "accept" && frame.by === "user"));

      // Elicitation, URL mode: the link is shown; declining goes back as decline.
      const url = await callTool(client, model, "trigger-url-elicitation", { url: "https://example.com/authorize" }, (frame) => {
        if (frame.type !== "elicitation_request") return;
        assert.equal(frame.mode, "url");
        assert.equal(frame.url, "https://example.com/authorize");
        client.send({ type: "elicitation", request_id: frame.request_id, action: "decline" });
      });
      assert.match(url.toolText, /User declined to open the URL/);

      // A tool that requires tasks runs through the SDK's task support.
      const research = await callTool(client, model, "simulate-research-query", { topic: "tides" });
      assert.match(research.toolText, /# Research Report: tides/);
      assert.ok(research.frames.some((frame) => frame.type === "tool_progress" && typeof frame.message === "string"));

      await client.close();
    });

    if (transport !== "stdio") {
      test("a remote restart in the middle of a session is invisible to the user", async () => {
        const { client } = await connectUser(running, "restart-user", "?stream=1");
        const before = await callTool(client, model, "echo", { message: "before" });
        assert.match(before.toolText, /Echo: before/);
        await remote?.stop();
        remote = await startRemote(transport === "sse" ? "sse" : "streamableHttp", port);
        const afterRestart = await callTool(client, model, "echo", { message: "after" });
        assert.match(afterRestart.toolText, /Echo: after/);
        const info = (await (await fetch(`${running.url}/sessions/restart-user`)).json()) as { mcp_servers: Record<string, unknown>[] };
        const server = info.mcp_servers.find((entry) => entry.name === "everything");
        assert.equal(server?.state, "ready");
        assert.equal(server?.reconnects, 1);
        assert.equal(typeof server?.last_reconnect_at, "string");
        assert.ok(readLog(running.logPath).some((line) => line.event === "mcp_session_lost" && line.user_id === "restart-user"));
        await client.close();
      });
    }
  });
}

suite("stdio");
suite("sse");
suite("streamable_http");
