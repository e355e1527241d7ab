// Fair sharing, budgets per piece of work: one HTML conversion has its own time budget and a
// nesting cap (then the page's text), so a crafted page holds the only worker for its budget, not
// the fetch's deadline; oversized frames are refused from their length and a socket that keeps
// sending them is closed; a socket joining mid-turn gets a bounded replay.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterTool, lastToolResult, lastUserText, startModelServer, type ModelServer } from "../helpers/model-server.ts";
import { baseConfig, connect, connectUser, startServer, testServerEntry, type Frame, type RunningServer } from "../helpers/harness.ts";

const BIG_PAGE = `<html><body><article>${"<p>A paragraph of <b>real</b> content with <a href='/x'>a link</a>.</p>".repeat(12_000)}</article></body></html>`;
const DEEP_PAGE = `<html><body>${"<div>".repeat(5000)}deep words${"</div>".repeat(5000)}</body></html>`;
const SMALL_PAGE =
  "<html><head><title>Small</title></head><body><article><h1>Small page</h1><p>Quick to convert.</p></article></body></html>";

let model: ModelServer;
let site: http.Server;
let siteUrl: string;
let running: RunningServer;

before(async () => {
  site = http.createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html", connection: "close" });
    res.end(req.url?.startsWith("/big") ? BIG_PAGE : req.url?.startsWith("/deep") ? DEEP_PAGE : SMALL_PAGE);
  });
  await new Promise<void>((resolve) => site.listen(0, "127.0.0.1", resolve));
  siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
  model = await startModelServer({
    responder: (request) => {
      if (afterTool(request)) return { content: `RESULT ${lastToolResult(request).slice(0, 600)}` };
      const text = lastUserText(request);
      if (text.startsWith("FETCH ")) return { toolCalls: [{ name: "fetch_fetch", arguments: { url: text.slice(6) } }] };
      // A long answer, then a tool call that waits for approval: the turn pauses mid-way.
      if (text === "LONG") return { content: "word ".repeat(4000), chunkChars: 500, toolCalls: [{ name: "test_pid", arguments: {} }] };
      return { content: `echo: ${text}` };
    },
  });
  running = await startServer({
    config: baseConfig(
      model.baseUrl,
      {
        fetch: { builtin: "fetch", allow_hosts: ["127.0.0.1"], convert_workers: 1, convert_budget_seconds: 0.3, max_convert_depth: 100 },
        test: { ...testServerEntry, require_approval: ["pid"] },
      },
      {
        session: { store: "memory" },
        limits: {
          max_message_chars: 1000,
          max_inline_attachment_bytes: 1000,
          max_refused_frames_per_socket: 3,
          max_replay_bytes: 4000,
          messages_per_minute: 600,
          message_burst: 50,
        },
      },
    ),
    secrets: { openai: { api_key: "sk-test-budgets" } },
  });
});
after(async () => {
  await running?.close();
  await model?.close();
  site.closeAllConnections();
  await new Promise((resolve) => site.close(resolve));
});

const endsTurn = (frame: Frame) => frame.type === "answer" || frame.type === "error" || frame.type === "cancelled";

test("a page past its conversion budget comes back as text, and the next user's page is converted by a fresh worker", async () => {
  const a = await connectUser(running, "slowpage", "?stream=1");
  const b = await connectUser(running, "quickpage", "?stream=1");
  a.client.send({ message: `FETCH ${siteUrl}/big` });
  await a.client.nextMatching((frame) => frame.type === "tool_start");
  b.client.send({ message: `FETCH ${siteUrl}/small` });
  const [endA, endB] = await Promise.all([a.client.nextMatching(endsTurn, 60_000), b.client.nextMatching(endsTurn, 60_000)]);
  assert.match(String(endA.message), /not converted to Markdown: it took longer than 0\.3 s to convert \(convert_budget_seconds/);
  assert.match(String(endA.message), /A paragraph of real content with a link\./, "the page's text instead");
  assert.match(String(endB.message), /# Small page/, "converted, not held behind the crafted page");
  await Promise.all([a.client.close(), b.client.close()]);
});

test("markup nested past max_convert_depth is given as text, without converting it", async () => {
  const { client } = await connectUser(running, "deeppage", "?stream=1");
  client.send({ message: `FETCH ${siteUrl}/deep` });
  const end = await client.nextMatching(endsTurn, 60_000);
  assert.match(String(end.message), /its elements nest deeper than 100 \(max_convert_depth/);
  assert.match(String(end.message), /deep words/);
  await client.close();
});

test("a frame too long to be a message is refused before it is parsed; a socket that keeps sending them is closed with 1008", async () => {
  const { client } = await connectUser(running, "bigframes");
  const huge = JSON.stringify({ message: "x".repeat(80_000) });
  client.send(huge);
  const refused = await client.next();
  assert.equal(refused.code, "frame_too_large");
  assert.match(String(refused.error), /limits\.max_message_chars/);
  // Still open, still answering.
  assert.equal((await (client.send({ message: "still here" }), client.next())).message, "echo: still here");
  client.send("not json");
  await client.next();
  client.send(huge);
  await client.next();
  const closed = await client.closed;
  assert.equal(closed.code, 1008);
  assert.match(closed.reason, /limits\.max_refused_frames_per_socket/);
  // Another socket of the same user is not affected.
  const again = await connectUser(running, "bigframes");
  assert.equal((await (again.client.send({ message: "hello" }), again.client.next())).message, "echo: hello");
  await again.client.close();
});

test("a socket joining mid-turn gets at most limits.max_replay_bytes of it: the start, a hint, the newest text and the open approval", async () => {
  const first = await connectUser(running, "replayer", "?stream=1");
  first.client.send({ message: "LONG" });
  const request = await first.client.nextMatching((frame) => frame.type === "approval_request");
  const late = await connect(running.wsUrl("replayer", "?stream=1"));
  const frames: Frame[] = [];
  for (let frame = await late.next(); ; frame = await late.next()) {
    frames.push(frame);
    if (frame.type === "approval_request") break;
  }
  const replayed = frames.slice(1);
  assert.equal(replayed[0]?.type, "turn_start");
  const cut = replayed[0]?.replay_cut as { omitted_bytes: number; hint: string };
  assert.ok(cut.omitted_bytes > 10_000, JSON.stringify(cut));
  assert.match(cut.hint, /history/);
  const bytes = replayed.reduce((sum, frame) => sum + Buffer.byteLength(JSON.stringify(frame)), 0);
  assert.ok(bytes <= 4000 + 1000, `${bytes} bytes replayed`);
  const text = replayed
    .filter((frame) => frame.type === "delta")
    .map((frame) => String(frame.text))
    .join("");
  assert.ok(text.length > 0 && "word ".repeat(4000).endsWith(text), "the newest text");
  assert.ok(replayed.some((frame) => frame.type === "tool_start" && frame.call_id === request.call_id));
  // The late socket can answer the approval it was shown.
  late.send({ type: "approval", call_id: request.call_id, approved: true });
  const end = await late.nextMatching(endsTurn);
  assert.equal(end.type, "answer");
  await Promise.all([first.client.close(), late.close()]);
});
