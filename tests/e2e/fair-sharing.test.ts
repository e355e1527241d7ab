// Fair sharing: no user-controlled work on the main thread beyond a bound. robots.txt is
// matched in linear time (a crafted rule that froze the server costs microseconds), and the
// HTML → Markdown pool serves users in turn, cutting markup too large to convert.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { startModelServer, afterTool, lastUserText, type ModelServer } from "../helpers/model-server.ts";
import { baseConfig, connectUser, startServer, until, type Frame, type RunningServer } from "../helpers/harness.ts";

/** A rule that makes a backtracking matcher (`.*a.*a…b`) take exponential time on a path of a's. */
const CRAFTED_RULE = `/${"*a".repeat(40)}*b`;
const LONG_PATH = `/${"a".repeat(12_000)}`;

// ---- through the server ---------------------------------------------------------------------------

let model: ModelServer;
let site: http.Server;
let siteUrl: string;
let running: RunningServer;
/** Large pages the site has finished sending. */
let bigServed = 0;

const BIG_PAGE = `<html><body><article>${"<p>A paragraph of <b>real</b> content with <a href='/x'>a link</a>.</p>".repeat(12_000)}</article></body></html>`;

before(async () => {
  site = http.createServer((req, res) => {
    if (req.url === "/robots.txt") {
      res.writeHead(200, { "content-type": "text/plain" });
      return res.end(`User-agent: *\nDisallow: ${CRAFTED_RULE}\n`);
    }
    res.writeHead(200, { "content-type": "text/html", connection: "close" });
    if (req.url?.startsWith("/big")) {
      res.on("finish", () => bigServed++);
      return res.end(BIG_PAGE);
    }
    res.end(`<html><head><title>Small</title></head><body><article><h1>Small page</h1><p>Quick to convert.</p></article></body></html>`);
  });
  await new Promise<void>((resolve) => site.listen(0, "127.0.0.1", resolve));
  siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
  model = await startModelServer({
    responder: (request) => {
      if (afterTool(request)) {
        const results = request.messages.filter((message) => message.role === "tool").map((message) => String(message.content));
        return {
          content: `PAGES ${JSON.stringify(results.map((text) => text.slice(0, 120)))} ${results.some((text) => text.includes("max_convert_chars")) ? "CUT" : ""}${results.some((text) => text.includes("Small page")) ? "SMALL" : ""}`,
        };
      }
      const [word = "", count = "1", url = ""] = lastUserText(request).split(" ");
      if (word !== "FETCH") return { content: `echo: ${lastUserText(request)}` };
      return { toolCalls: Array.from({ length: Number(count) }, (_, n) => ({ name: "fetch_fetch", arguments: { url: `${url}?n=${n}` } })) };
    },
  });
  running = await startServer({
    config: baseConfig(
      model.baseUrl,
      // One worker, so that fairness is shown by order alone (more workers only help B further).
      {
        fetch: {
          builtin: "fetch",
          allow_hosts: ["127.0.0.1"],
          convert_workers: 1,
          max_convert_chars: 400_000,
          fetch_timeout_seconds: 120,
          read_timeout_seconds: 130,
        },
      },
      { session: { store: "memory" } },
    ),
    secrets: { openai: { api_key: "sk-test-fair" } },
  });
});
after(async () => {
  await running?.close();
  await model?.close();
  site.closeAllConnections();
  await new Promise((resolve) => site.close(resolve));
});

const endsTurn = (frame: Frame) => frame.type === "answer" || frame.type === "error" || frame.type === "cancelled";

test("a fetch checked against a crafted robots.txt rule: /health keeps answering and the page comes back", async () => {
  const { client } = await connectUser(running, "robots", "?stream=1");
  let slowest = 0;
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const started = performance.now();
      assert.equal((await fetch(`${running.url}/health`)).status, 200);
      slowest = Math.max(slowest, performance.now() - started);
    }
  })();
  client.send({ message: `FETCH 1 ${siteUrl}${LONG_PATH}` });
  const end = await client.nextMatching(endsTurn, 30_000);
  polling = false;
  await poller;
  assert.equal(end.type, "answer");
  assert.equal(client.frames.find((frame) => frame.type === "tool_end")?.ok, true);
  assert.match(String(end.message), / SMALL$/, "allowed: the rule needs a final b");
  // The backtracking matcher took more than 20 s on this rule; 2 s leaves room for a busy CI machine.
  assert.ok(slowest < 2000, `/health took up to ${slowest.toFixed(0)} ms`);
  await client.close();
});

test("markup past max_convert_chars is cut before conversion, with a note naming the key", async () => {
  const { client } = await connectUser(running, "cutter", "?stream=1");
  client.send({ message: `FETCH 1 ${siteUrl}/big` });
  const end = await client.nextMatching(endsTurn, 60_000);
  assert.equal(end.type, "answer");
  assert.match(String(end.message), / CUT$/);
  await client.close();
});

test("fair conversion: user B's small page does not wait for all of user A's large ones", async () => {
  const a = (await connectUser(running, "heavy", "?stream=1")).client;
  const b = (await connectUser(running, "light", "?stream=1")).client;
  const served = bigServed;
  a.send({ message: `FETCH 4 ${siteUrl}/big` });
  // B asks once A's four pages have all been downloaded: they are with the converter, ahead of B's.
  await until(() => bigServed >= served + 4, "A's pages downloaded");
  b.send({ message: `FETCH 1 ${siteUrl}/small` });
  const bEnd = await b.nextMatching(endsTurn, 120_000);
  // How many of A's pages were done when B had its answer (frames are recorded as they arrive).
  const aDoneAtB = a.frames.filter((frame) => frame.type === "tool_end").length;
  assert.equal(bEnd.type, "answer");
  assert.match(String(bEnd.message), / SMALL$/);
  const aEnd = await a.nextMatching(endsTurn, 120_000);
  assert.equal(aEnd.type, "answer");
  assert.equal(a.frames.filter((frame) => frame.type === "tool_end").length, 4);
  // In arrival order B's page waits for all four of A's (checked: 4 with one queue for all); served
  // in turn, only for the one converting when it arrived (and the next, if B's fetch took longer).
  assert.ok(aDoneAtB <= 2, `${aDoneAtB} of A's 4 pages were converted before B's`);
  await a.close();
  await b.close();
});
