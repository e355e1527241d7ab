// limits.workspace_bytes holds against uploads running together, against names that look like
// temp files, and against the built-in filesystem's writes; uploads at once are capped per user and
// per address; an upload's temp file exists only once its first byte arrived. Real HTTP requests.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { ask, baseConfig, connectUser, filesystemEntry, startServer, until, type RunningServer } from "../helpers/harness.ts";
import { startModelServer, toolDirective, type ModelServer } from "../helpers/model-server.ts";

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  json: Record<string, unknown>;
}

/** An upload whose body the test sends when it likes; `localAddress` picks the client's loopback address. */
function openUpload(base: string, rawPath: string, options: { length?: number; localAddress?: string } = {}) {
  const url = new URL(base);
  const headers: Record<string, string | number> = { "x-requested-with": "test" };
  if (options.length !== undefined) headers["content-length"] = options.length;
  else headers["transfer-encoding"] = "chunked";
  const req = http.request({
    host: url.hostname,
    port: url.port,
    method: "PUT",
    path: rawPath,
    headers,
    agent: false,
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
  });
  const answer = new Promise<Answer>((resolve, reject) => {
    let answered = false;
    req.on("response", (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          json: JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as Record<string, unknown>,
        }),
      );
    });
    // The server closes a refused upload's connection after its answer, maybe while the body is still being sent.
    req.on("error", (error) => {
      if (!answered) reject(error);
    });
  });
  req.flushHeaders();
  return { req, answer };
}

async function put(base: string, rawPath: string, body: Buffer, localAddress?: string): Promise<Answer> {
  const upload = openUpload(base, rawPath, { length: body.length, ...(localAddress ? { localAddress } : {}) });
  upload.req.end(body);
  return upload.answer;
}

describe("workspace quota", () => {
  let model: ModelServer;
  let running: RunningServer;
  let root: string;
  const ws = (user: string) => path.join(root, user);
  const uploading = () => (existsSync(path.join(root, "+uploads")) ? readdirSync(path.join(root, "+uploads")) : []);
  const usedBytes = async (user: string) => {
    const listing = (await (await fetch(`${running.url}/files/${user}`)).json()) as { used_bytes: number; entries: { path: string }[] };
    return listing;
  };

  before(async () => {
    model = await startModelServer({ responder: (request) => toolDirective(request) ?? { content: "no directive" } });
    running = await startServer({
      config: baseConfig(
        model.baseUrl,
        { filesystem: { ...filesystemEntry, builtin: "filesystem" } },
        {
          session: { store: "memory" },
          limits: { max_upload_bytes: 4096, workspace_bytes: 10_000, max_uploads_per_user: 12, max_uploads_per_address: 12 },
        },
      ),
      secrets: { openai: { api_key: "sk-test-quota" } },
    });
    root = path.join(running.configDir, "workspace");
  });
  after(async () => {
    await running.close();
    await model.close();
  });

  test("uploads running together cannot pass limits.workspace_bytes together, declared or chunked", async () => {
    // Eight uploads of 3000 bytes each start at once and each sends half its body before any ends.
    const uploads = Array.from({ length: 8 }, (_, n) => openUpload(running.url, `/files/race/f${n}.bin`, { length: 3000 }));
    for (const upload of uploads) upload.req.write(Buffer.alloc(1500, 1));
    for (const upload of uploads) upload.req.end(Buffer.alloc(1500, 2));
    const answers = await Promise.all(uploads.map((upload) => upload.answer));
    const stored = answers.filter((answer) => answer.status === 201);
    assert.equal(stored.length, 3, "three files of 3000 bytes fit in 10000, a fourth does not");
    for (const answer of answers.filter((answer) => answer.status !== 201)) {
      assert.equal(answer.status, 413);
      assert.equal(answer.json.code, "workspace_full");
      assert.equal(answer.json.limit, "limits.workspace_bytes");
      assert.match(String(answer.json.error), /limits\.workspace_bytes/);
    }
    assert.ok((await usedBytes("race")).used_bytes <= 10_000);

    // Bodies of unknown length reserve as they grow: still never past the quota together.
    const chunked = Array.from({ length: 6 }, (_, n) => openUpload(running.url, `/files/race2/c${n}.bin`));
    for (const upload of chunked) upload.req.write(Buffer.alloc(2000, 3));
    for (const upload of chunked) upload.req.end(Buffer.alloc(2000, 4));
    const settled = await Promise.all(chunked.map((upload) => upload.answer.catch(() => ({ status: 0, headers: {}, json: {} }))));
    const kept = settled.filter((answer) => answer.status === 201).length;
    assert.ok(kept >= 1 && kept * 4000 <= 10_000, `kept ${kept}`);
    assert.ok((await usedBytes("race2")).used_bytes <= 10_000);
    await until(() => uploading().length === 0, "every temp file to be gone");
  });

  test("every regular file counts, whatever its name; temp files are never in the workspace", async () => {
    const lookalike = ".upload-0123456789abcdef.part";
    assert.equal((await put(running.url, `/files/names/${lookalike}`, Buffer.alloc(4000))).status, 201);
    const listing = await usedBytes("names");
    assert.deepEqual(
      listing.entries.map((entry) => entry.path),
      [lookalike],
    );
    assert.equal(listing.used_bytes, 4000);
    assert.equal((await put(running.url, "/files/names/b.bin", Buffer.alloc(4000))).status, 201);
    assert.equal((await put(running.url, "/files/names/c.bin", Buffer.alloc(4000))).status, 413, "the look-alike is counted");
    // An upload in progress has its temp file in the server's uploads folder, not in the workspace.
    const slow = openUpload(running.url, "/files/names/d.bin", { length: 1000 });
    slow.req.write(Buffer.alloc(10));
    await until(() => uploading().length === 1, "the temp file");
    assert.deepEqual(readdirSync(ws("names")).sort(), [lookalike, "b.bin"].sort());
    assert.equal((statSync(path.join(root, "+uploads")).mode & 0o777).toString(8), "700");
    slow.req.end(Buffer.alloc(990));
    assert.equal((await slow.answer).status, 201);
  });

  test("the built-in filesystem's writes count against limits.workspace_bytes", async () => {
    assert.equal((await put(running.url, "/files/tool/big.bin", Buffer.alloc(4000))).status, 201);
    assert.equal((await put(running.url, "/files/tool/big2.bin", Buffer.alloc(4000))).status, 201);
    const { client } = await connectUser(running, "tool");
    try {
      const refused = await ask(client, `CALL filesystem_write_file ${JSON.stringify({ path: "more.txt", content: "x".repeat(3000) })}`);
      assert.match(String(refused.message), /^RESULT Error: Not written: the workspace is full.*limits\.workspace_bytes/);
      assert.equal(existsSync(path.join(ws("tool"), "more.txt")), false);
      const fits = await ask(client, `CALL filesystem_write_file ${JSON.stringify({ path: "small.txt", content: "line\n".repeat(200) })}`);
      assert.equal(fits.message, "RESULT Successfully wrote to small.txt");
      // An edit that would grow the file past the quota is refused and leaves it as it was.
      const edit = { path: "small.txt", edits: [{ oldText: "line", newText: "y".repeat(2000) }] };
      const grown = await ask(client, `CALL filesystem_edit_file ${JSON.stringify(edit)}`);
      assert.match(String(grown.message), /^RESULT Error: Not written: .*limits\.workspace_bytes/);
      assert.equal(statSync(path.join(ws("tool"), "small.txt")).size, 1000);
      // And a tool's write leaves less room for an upload.
      assert.equal((await put(running.url, "/files/tool/last.bin", Buffer.alloc(1500))).status, 413);
    } finally {
      await client.close();
    }
  });
});

describe("uploads at once", () => {
  let model: ModelServer;
  let running: RunningServer;
  let root: string;
  const uploading = () => (existsSync(path.join(root, "+uploads")) ? readdirSync(path.join(root, "+uploads")) : []);

  before(async () => {
    model = await startModelServer();
    running = await startServer({
      config: baseConfig(
        model.baseUrl,
        {},
        { session: { store: "memory" }, limits: { max_uploads_per_user: 2, max_uploads_per_address: 3 } },
      ),
      secrets: { openai: { api_key: "sk-test-quota" } },
    });
    root = path.join(running.configDir, "workspace");
  });
  after(async () => {
    await running.close();
    await model.close();
  });

  test("are capped per user and per address (429 naming the key)", async () => {
    const first = openUpload(running.url, "/files/ursula/a.bin", { length: 100 });
    const second = openUpload(running.url, "/files/ursula/b.bin", { length: 100 });
    for (const upload of [first, second]) upload.req.write(Buffer.alloc(1));
    await until(() => uploading().length === 2, "both uploads to be running");
    const third = await put(running.url, "/files/ursula/c.bin", Buffer.alloc(10));
    assert.equal(third.status, 429);
    assert.equal(third.json.code, "too_many_uploads");
    assert.equal(third.json.limit, "limits.max_uploads_per_user");
    assert.match(String(third.json.error), /limits\.max_uploads_per_user/);
    assert.ok(Number(third.headers["retry-after"]) > 0);
    for (const upload of [first, second]) upload.req.end(Buffer.alloc(99));
    assert.deepEqual(
      (await Promise.all([first.answer, second.answer])).map((answer) => answer.status),
      [201, 201],
    );
    assert.equal((await put(running.url, "/files/ursula/d.bin", Buffer.alloc(10))).status, 201, "slots are given back");

    // Three users from one address fill the address's slots; a fourth upload from it is refused...
    const held = ["victor", "vera", "vince"].map((user) => openUpload(running.url, `/files/${user}/a.bin`, { length: 100 }));
    for (const upload of held) upload.req.write(Buffer.alloc(1));
    await until(() => uploading().length === 3, "three uploads to be running");
    const fourth = await put(running.url, "/files/walter/a.bin", Buffer.alloc(10));
    assert.equal(fourth.status, 429);
    assert.equal(fourth.json.limit, "limits.max_uploads_per_address");
    // ...while another address still uploads.
    assert.equal((await put(running.url, "/files/walter/a.bin", Buffer.alloc(10), "127.0.0.2")).status, 201);
    for (const upload of held) upload.req.end(Buffer.alloc(99));
    assert.deepEqual(
      (await Promise.all(held.map((upload) => upload.answer))).map((answer) => answer.status),
      [201, 201, 201],
    );
  });

  test("the temp file is opened on the first byte, not on the headers", async () => {
    const upload = openUpload(running.url, "/files/yan/a.bin", { length: 100 });
    const uploadingBytes = async () =>
      ((await (await fetch(`${running.url}/files/yan`)).json()) as { uploading_bytes: number }).uploading_bytes;
    // The server has taken the upload (its bytes are reserved) and holds no file for it yet.
    await until(async () => (await uploadingBytes()) === 100, "the upload's reservation");
    assert.deepEqual(uploading(), []);
    upload.req.write(Buffer.alloc(1));
    await until(() => uploading().length === 1, "the temp file after the first byte");
    upload.req.end(Buffer.alloc(99));
    assert.equal((await upload.answer).status, 201);
    assert.equal(await uploadingBytes(), 0);
  });
});

describe("file errors", () => {
  let model: ModelServer;
  let running: RunningServer;

  before(async () => {
    model = await startModelServer();
    running = await startServer({
      config: baseConfig(model.baseUrl, {}, { session: { store: "memory" } }),
      secrets: { openai: { api_key: "sk-test-errno" } },
    });
  });
  after(async () => {
    await running.close();
    await model.close();
  });

  test("map their errno to a 4xx naming the path as the client gave it, never the server's folders", async () => {
    const long = "n".repeat(300);
    assert.equal((await put(running.url, "/files/errs/ok.txt", Buffer.from("fine"))).status, 201);
    const answers = [
      await put(running.url, `/files/errs/${long}`, Buffer.from("x")),
      await (async () => {
        const response = await fetch(`${running.url}/files/errs/${long}`);
        return { status: response.status, headers: {}, json: (await response.json()) as Record<string, unknown> };
      })(),
      await put(running.url, `/files/errs/ok.txt/inside.txt`, Buffer.from("x")),
    ];
    for (const answer of answers) {
      assert.ok(answer.status >= 400 && answer.status < 500, JSON.stringify(answer));
      assert.ok(!JSON.stringify(answer.json).includes(running.configDir), JSON.stringify(answer.json));
      assert.ok(!JSON.stringify(answer.json).includes("/workspace/"), JSON.stringify(answer.json));
    }
    // The containment check refuses the long name before any file is opened: still the client's path, never the server's.
    assert.match(String(answers[0]?.json.error), /n{200}/);
    assert.ok(["invalid_request", "forbidden"].includes(String(answers[1]?.json.code)));
    assert.match(String(answers[2]?.json.error), /ok\.txt\/inside\.txt/);
  });
});
