// Attachments the model can see: a screenshot inline and a PDF uploaded first, sent with one
// message over the real socket; what reached the model (image parts, page-numbered text), what
// the frames and the history show, the files in the workspace; every refusal and its reason.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import sharp from "sharp";
import { startModelServer, type ChatRequest, type ChatRequestMessage, type ModelServer } from "../helpers/model-server.ts";
import { makePdf } from "../helpers/pdf.ts";
import { baseConfig, connectUser, ROOT, startServer, type Frame, type RunningServer, type TestClient } from "../helpers/harness.ts";

let model: ModelServer;
let running: RunningServer;
let screenshot: Buffer;

before(async () => {
  model = await startModelServer();
  running = await startServer({
    config: baseConfig(
      model.baseUrl,
      {},
      { limits: { max_attachments: 3, max_inline_attachment_bytes: 200_000, max_attachment_tokens: 2000 } },
    ),
    secrets: { openai: { api_key: "sk-test-attach" } },
  });
  screenshot = await sharp({ create: { width: 3000, height: 2000, channels: 3, background: { r: 20, g: 120, b: 200 } } })
    .png()
    .toBuffer();
});
after(async () => {
  await running.close();
  await model.close();
});

async function readTurn(client: TestClient): Promise<Frame[]> {
  const frames: Frame[] = [];
  for (;;) {
    const frame = await client.next();
    frames.push(frame);
    if (frame.type === "answer" || frame.type === "error" || frame.type === "cancelled") return frames;
  }
}

async function upload(userId: string, name: string, body: Buffer): Promise<void> {
  const answer = await fetch(`${running.url}/files/${userId}/${name}`, {
    method: "PUT",
    body: new Uint8Array(body),
    headers: { "x-requested-with": "test" },
  });
  assert.equal(answer.status < 300, true, `upload ${name}: ${answer.status} ${await answer.text()}`);
}

/** The parts of the attachments message the model received (the user message of parts). */
function attachmentParts(request: ChatRequest | undefined): NonNullable<Exclude<ChatRequestMessage["content"], string | null>> {
  const message = request?.messages.find((candidate) => candidate.role === "user" && Array.isArray(candidate.content));
  return Array.isArray(message?.content) ? message.content : [];
}

const pdfPages = Array.from({ length: 20 }, (_, n) => (n === 6 ? null : `Quarterly figure ${n + 1}: revenue ${(n + 1) * 100}`));

test("a screenshot inline and a 20-page PDF after upload: the model gets both, and every tab sees what was sent", async () => {
  const user = "attacher";
  await upload(user, "report.pdf", makePdf(pdfPages));
  model.setResponder((request) => {
    const parts = attachmentParts(request);
    const sawImage = parts.some((part) => part.type === "image_url");
    const sawPdf = parts.some((part) => part.type === "text" && part.text.includes("revenue 2000"));
    return { content: `image:${sawImage} pdf:${sawPdf}` };
  });
  const { client } = await connectUser(running, user, "?stream=1");
  const other = await connectUser(running, user, "?stream=1");
  client.send({
    message: "What does the screenshot show, and what was revenue on page 20?",
    attachments: [{ name: "screen shot.png", data: screenshot.toString("base64") }, { path: "report.pdf" }],
  });
  const frames = await readTurn(client);
  assert.equal(frames.at(-1)?.message, "image:true pdf:true");
  // What was sent is visible, in the order sent, on every tab.
  const shown = frames.find((frame) => frame.type === "attachments");
  const items = shown?.items as Frame[];
  assert.equal(items.length, 2);
  assert.match(String(items[0]?.summary), /^screen shot\.png — image 1568×1045 \(from 3000×2000\), about \d[\d,]* tokens$/);
  assert.match(String(items[0]?.thumbnail), /^data:image\/webp;base64,/);
  assert.equal(items[0]?.path, "attachments/screen shot.png");
  assert.match(String(items[1]?.summary), /^report\.pdf — 20 pages \(1 without text\), \d[\d,]* tokens$/);
  assert.equal(items[1]?.pages, 20);
  const otherFrames = await readTurn(other.client);
  assert.deepEqual(
    otherFrames.find((frame) => frame.type === "attachments"),
    shown,
  );
  // The model got the image downscaled, and the PDF's text page by page, the scanned page named.
  const parts = attachmentParts(model.requests.at(-1));
  const image = parts.find((part) => part.type === "image_url");
  const url = image?.type === "image_url" ? image.image_url.url : "";
  assert.match(url, /^data:image\/png;base64,/);
  const sent = await sharp(Buffer.from(url.split(",")[1] ?? "", "base64")).metadata();
  assert.deepEqual([sent.width, sent.height], [1568, 1045]);
  const text = parts.flatMap((part) => (part.type === "text" ? [part.text] : [])).join("\n");
  assert.match(text, /\[page 1\]\nQuarterly figure 1: revenue 100/);
  assert.match(text, /\[page 7: no text on this page \(a scanned page or an image\); its content was not read\]/);
  assert.match(text, /\[page 20\]\nQuarterly figure 20: revenue 2000/);
  // The user's words stay a message of their own; the summaries are ours and not sent.
  const request = model.requests.at(-1);
  assert.equal(request?.messages.at(-2)?.content, "What does the screenshot show, and what was revenue on page 20?");
  assert.equal(JSON.stringify(request).includes('"attachments"'), false);
  // The inline file landed in the workspace, owner-only, for tools too.
  const saved = path.join(running.configDir, "workspace", user, "attachments", "screen shot.png");
  assert.deepEqual(readFileSync(saved), screenshot);
  assert.equal(statSync(saved).mode & 0o777, 0o600);
  // The history keeps the message with its attachments and thumbnails.
  client.send({ type: "history" });
  const history = await client.nextMatching((frame) => frame.type === "history");
  const userItem = (history.items as Frame[]).find((item) => item.role === "user");
  assert.deepEqual(
    (userItem?.attachments as Frame[]).map((item) => item.summary),
    items.map((item) => item.summary),
  );
  assert.match(String((userItem?.attachments as Frame[])[0]?.thumbnail), /^data:image\/webp/);
  // A later turn still carries the attachments to the model (they are part of the conversation).
  model.setResponder(() => ({ content: "again" }));
  client.send({ message: "and now?" });
  await readTurn(client);
  assert.ok(attachmentParts(model.requests.at(-1)).some((part) => part.type === "image_url"));
  await client.close();
  await other.client.close();
});

test("text and code files are read as text and capped in tokens, with a note", async () => {
  const user = "texter";
  await upload(user, "notes.md", Buffer.from("# Notes\nbuy milk\n"));
  await upload(user, "big.txt", Buffer.from("word ".repeat(20_000)));
  model.setResponder(() => ({ content: "read" }));
  const { client } = await connectUser(running, user, "?stream=1");
  client.send({ message: "read these", attachments: [{ path: "notes.md" }, { path: "big.txt" }] });
  const frames = await readTurn(client);
  assert.equal(frames.at(-1)?.message, "read");
  const items = frames.find((frame) => frame.type === "attachments")?.items as Frame[];
  assert.match(String(items[0]?.summary), /^notes\.md — \d+ tokens$/);
  assert.equal(items[1]?.cut, true);
  assert.equal(items[1]?.summary, "big.txt — 2,000 tokens (cut)");
  const text = attachmentParts(model.requests.at(-1))
    .flatMap((part) => (part.type === "text" ? [part.text] : []))
    .join("\n");
  assert.match(text, /# Notes\nbuy milk/);
  assert.match(text, /cut: only the first 2,000 of [\d,]+ tokens were sent \(limits\.max_attachment_tokens\)/);
  await client.close();
});

async function refusal(user: string, frame: Record<string, unknown>): Promise<string> {
  const before = model.requests.length;
  const { client } = await connectUser(running, user, "?stream=1");
  client.send(frame);
  const frames = await readTurn(client);
  await client.close();
  assert.equal(frames.at(-1)?.type, "error");
  assert.equal(frames.at(-1)?.code, "attachment_refused");
  assert.equal(model.requests.length, before, "the model was not called");
  return String(frames.at(-1)?.error);
}

test("refused attachments say why, name the key, and the model is not called", async () => {
  const one = { name: "a.txt", data: Buffer.from("a").toString("base64") };
  assert.match(
    await refusal("too_many", { message: "x", attachments: [one, one, one, one] }),
    /4 attachments: a message may have at most 3 \(limits\.max_attachments\)/,
  );
  assert.match(
    await refusal("too_big", { message: "x", attachments: [{ name: "big.bin", data: Buffer.alloc(300_000).toString("base64") }] }),
    /attachment big\.bin is 29\d\.\d KiB: the limit is 195\.3 KiB \(limits\.max_inline_attachment_bytes; upload larger files first/,
  );
  assert.match(
    await refusal("binary", { message: "x", attachments: [{ name: "x.bin", data: Buffer.from([0, 1, 2, 3, 255]).toString("base64") }] }),
    /attachment x\.bin: its type is not taken: images \(PNG, JPEG, GIF, WebP\), PDFs and text or code files are/,
  );
  assert.match(await refusal("missing", { message: "x", attachments: [{ path: "nope.pdf" }] }), /attachment nope\.pdf: ENOENT/);
  assert.match(
    await refusal("outside", { message: "x", attachments: [{ path: "../attacher/report.pdf" }] }),
    /Access denied - path outside allowed directories/,
  );
});

test("a malformed attachments list is refused as a frame error", async () => {
  const { client } = await connectUser(running, "malformed", "?stream=1");
  client.send({ message: "x", attachments: "report.pdf" });
  const frame = await client.next();
  assert.match(String(frame.error), /"attachments" must be a list of \{"path": "<workspace path>"\}/);
  await client.close();
});

test("a model without vision gets a clear error for an image, not a silent drop", async () => {
  const text = await startServer({
    config: { ...baseConfig(model.baseUrl), openai: { base_url: model.baseUrl, default_model: "gpt-3.5-turbo", max_retries: 0 } },
    secrets: { openai: { api_key: "sk-test-attach" } },
  });
  try {
    const before = model.requests.length;
    const { client } = await connectUser(text, "blind", "?stream=1");
    client.send({ message: "see this", attachments: [{ name: "s.png", data: screenshot.toString("base64") }] });
    const frames = await readTurn(client);
    await client.close();
    assert.equal(frames.at(-1)?.type, "error");
    assert.match(
      String(frames.at(-1)?.error),
      /attachment s\.png is an image and the model "gpt-3\.5-turbo" does not take images \(openai\.vision\)/,
    );
    assert.equal(model.requests.length, before);
  } finally {
    await text.close();
  }
});

test("an inline attachment becomes a workspace file, and files_changed names it", async () => {
  const user = "tools_after";
  model.setResponder(() => ({ content: "ok" }));
  const { client } = await connectUser(running, user, "?stream=1");
  client.send({ message: "keep this", attachments: [{ name: "data.csv", data: Buffer.from("a,b\n1,2\n").toString("base64") }] });
  const frames = await readTurn(client);
  assert.equal(frames.at(-1)?.type, "answer");
  const changed = frames.find((frame) => frame.type === "files_changed");
  assert.deepEqual(changed?.paths, ["attachments/data.csv"]);
  const saved = path.join(running.configDir, "workspace", user, "attachments", "data.csv");
  assert.equal(readFileSync(saved, "utf8"), "a,b\n1,2\n");
  await client.close();
});

test("the CLI's --attach uploads a file and the model reads it with the first message", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "attach-cli-"));
  try {
    const local = path.join(dir, "minutes.pdf");
    writeFileSync(local, makePdf(["Decision: ship on Friday"]));
    model.setResponder((request) => {
      const text = attachmentParts(request)
        .flatMap((part) => (part.type === "text" ? [part.text] : []))
        .join(" ");
      return { content: text.includes("ship on Friday") ? "They decided to ship on Friday." : "no attachment" };
    });
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [
        "--import",
        "tsx",
        path.join(ROOT, "client.ts"),
        "--url",
        running.url,
        "--user",
        "cli_attacher",
        "--attach",
        local,
        "-m",
        "what was decided?",
      ],
      { cwd: ROOT, env: { ...process.env, NO_COLOR: "1" } },
    );
    assert.equal(stdout, "They decided to ship on Friday.\n");
    assert.match(stderr, /attached .*minutes\.pdf \(\d+ B\), uploaded to the workspace as minutes\.pdf/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("inline attachments count against the workspace quota", async () => {
  const small = await startServer({
    config: baseConfig(model.baseUrl, {}, { limits: { workspace_bytes: 1000 } }),
    secrets: { openai: { api_key: "sk-test-attach" } },
  });
  try {
    const before = model.requests.length;
    const { client } = await connectUser(small, "quota_user", "?stream=1");
    client.send({ message: "keep", attachments: [{ name: "big.txt", data: Buffer.from("x".repeat(2000)).toString("base64") }] });
    const frames = await readTurn(client);
    await client.close();
    assert.match(
      String(frames.at(-1)?.error),
      /attachment big\.txt was not saved: the workspace may hold 1000 bytes \(limits\.workspace_bytes\)/,
    );
    assert.equal(model.requests.length, before);
  } finally {
    await small.close();
  }
});
