// The built-in fetch tool through the whole server: selection by config, Markdown results, the
// address guard, the uvx fallback, and conversion that never blocks the event loop.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { startModelServer, afterTool, lastUserText, type ModelServer } from "../helpers/model-server.ts";
import { ask, baseConfig, connectUser, readLog, startServer, until } from "../helpers/harness.ts";

let model: ModelServer;
let site: http.Server;
let siteUrl: string;

before(async () => {
  site = http.createServer((req, res) => {
    if (req.url === "/robots.txt") return res.writeHead(404).end();
    if (req.url === "/huge") {
      // Several MB of real content: seconds of parsing and conversion.
      res.writeHead(200, { "content-type": "text/html", connection: "close" });
      return res.end(
        `<html><body><article>${"<p>A paragraph of <b>real</b> content with <a href='/x'>a link</a>.</p>".repeat(60_000)}</article></body></html>`,
      );
    }
    res.writeHead(200, { "content-type": "text/html" });
    res.end(
      "<html><head><title>Local page</title></head><body><article><h1>Hello fetch</h1><p>The page content is here.</p></article></body></html>",
    );
  });
  await new Promise<void>((resolve) => site.listen(0, "127.0.0.1", resolve));
  siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}/page`;
  model = await startModelServer({
    responder: (request) =>
      afterTool(request)
        ? { content: `PAGE ${String(request.messages.at(-1)?.content).slice(0, 200)}` }
        : lastUserText(request).startsWith("http")
          ? { toolCalls: [{ name: "fetch_fetch", arguments: { url: lastUserText(request) } }] }
          : { content: `echo: ${lastUserText(request)}` },
  });
});
after(async () => {
  await model.close();
  site.closeAllConnections();
  await new Promise((resolve) => site.close(resolve));
});

test("the model's fetch_fetch call works end to end and the page comes back as Markdown", async () => {
  const running = await startServer({
    config: baseConfig(model.baseUrl, { fetch: { builtin: "fetch", allow_hosts: ["127.0.0.1"] } }),
    secrets: { openai: { api_key: "sk-test" } },
  });
  try {
    const { client } = await connectUser(running, "fetcher");
    const answer = String((await ask(client, siteUrl)).message);
    assert.match(answer, /^PAGE Contents of http:\/\/127\.0\.0\.1:\d+\/page:/);
    assert.match(answer, /Hello fetch/);
    assert.match(answer, /The page content is here\./);
    assert.ok(model.requests.at(-1)?.tools?.some((tool) => tool.function.name === "fetch_fetch"));
    // Without the allow list entry the same address is refused with a message naming the key.
    await client.close();
  } finally {
    await running.close();
  }
});

test("loopback is refused by default, with the config key that would allow it", async () => {
  const running = await startServer({
    config: baseConfig(model.baseUrl, { fetch: { builtin: "fetch" } }),
    secrets: { openai: { api_key: "sk-test" } },
  });
  try {
    const { client } = await connectUser(running, "refused");
    const answer = String((await ask(client, siteUrl)).message);
    assert.match(answer, /^PAGE Error: .*loopback.*allow_hosts/s);
    await client.close();
  } finally {
    await running.close();
  }
});

test("the original uvx entry falls back to the built-in tool with one warning when uvx is missing", async () => {
  const savedPath = process.env.PATH;
  process.env.PATH = "/nonexistent-bin";
  let running;
  try {
    running = await startServer({
      config: baseConfig(model.baseUrl, { fetch: { command: "uvx", args: ["mcp-server-fetch"], allow_hosts: ["127.0.0.1"] } }),
      secrets: { openai: { api_key: "sk-test" } },
    });
  } finally {
    process.env.PATH = savedPath;
  }
  try {
    const a = await connectUser(running, "fallback_a");
    const b = await connectUser(running, "fallback_b");
    assert.match(String((await ask(a.client, siteUrl)).message), /Hello fetch/);
    assert.match(String((await ask(b.client, siteUrl)).message), /Hello fetch/);
    await until(() => readLog(running.logPath).some((line) => line.event === "fetch_fallback"), "fallback warning");
    const warnings = readLog(running.logPath).filter((line) => line.event === "fetch_fallback");
    assert.equal(warnings.length, 1, "one warning, not one per session");
    assert.match(String(warnings[0]?.message), /uvx.*not installed.*built-in fetch/);
    // Shared by all sessions: no child process, the same connection for both users.
    const info = (await (await fetch(`${running.url}/sessions/fallback_a`)).json()) as { mcp_servers: { shared: boolean; pid?: number }[] };
    assert.equal(info.mcp_servers[0]?.shared, true);
    assert.equal(info.mcp_servers[0]?.pid, undefined);
    await a.client.close();
    await b.client.close();
  } finally {
    await running.close();
  }
});

test("converting a huge page to Markdown never blocks the server: the event loop stays free, other users' turns go on", async () => {
  const running = await startServer({
    config: baseConfig(
      model.baseUrl,
      { fetch: { builtin: "fetch", allow_hosts: ["127.0.0.1"], max_fetch_bytes: 20_000_000, convert_budget_seconds: 120 } },
      { limits: { messages_per_minute: 100_000, message_burst: 100_000 } },
    ),
    secrets: { openai: { api_key: "sk-test" } },
  });
  try {
    const fetcher = await connectUser(running, "big_fetcher", "?stream=1");
    const other = await connectUser(running, "other_user");
    // The server runs in this process: if the conversion (seconds of CPU) ran on its event loop,
    // the loop would stall for that long. It runs in a worker thread, so the loop's longest stall
    // stays a small part of the fetch, and the other user chats on meanwhile.
    const stalls = monitorEventLoopDelay({ resolution: 10 });
    const started = Date.now();
    stalls.enable();
    fetcher.client.send({ message: siteUrl.replace("/page", "/huge") });
    let answered = 0;
    while (!fetcher.client.frames.some((f) => f.type === "tool_end")) {
      assert.equal((await ask(other.client, `are you there? ${answered}`)).message, `echo: are you there? ${answered}`);
      answered++;
    }
    stalls.disable();
    const fetchMs = Date.now() - started;
    const longestStallMs = stalls.max / 1e6;
    assert.ok(longestStallMs < fetchMs / 2, `the event loop stalled ${Math.round(longestStallMs)} ms of a ${fetchMs} ms fetch`);
    assert.ok(answered > 1);
    const end = await fetcher.client.nextMatching((f) => f.type === "tool_end");
    assert.equal(end.ok, true);
    assert.match(String(end.preview), /A paragraph of \*\*real\*\* content/);
    // Cancelling a turn mid-conversion stops that conversion; the next fetch works.
    fetcher.client.send({ message: siteUrl.replace("/page", "/huge") });
    await fetcher.client.nextMatching((f) => f.type === "tool_start");
    fetcher.client.send({ type: "cancel" });
    assert.equal((await fetcher.client.nextMatching((f) => f.type === "cancelled" || f.type === "answer")).type, "cancelled");
    fetcher.client.send({ message: siteUrl });
    assert.match(String((await fetcher.client.nextMatching((f) => f.type === "answer")).message), /Hello fetch/);
    await fetcher.client.close();
    await other.client.close();
  } finally {
    await running.close();
  }
});
