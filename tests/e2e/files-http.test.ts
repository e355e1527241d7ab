// The files API (GET/PUT/DELETE /files/<user_id>/<path>) against the real server on port 0, with
// raw HTTP requests: a URL library would normalise away the `..` and `%2e%2e` being tested.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { baseConfig, connectUser, filesystemEntry, startServer, type Frame, type RunningServer } from "../helpers/harness.ts";
import { startModelServer, toolDirective, type ModelServer } from "../helpers/model-server.ts";

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  json(): Record<string, unknown>;
}

/** One request with the path sent exactly as given. */
function request(
  base: string,
  method: string,
  rawPath: string,
  options: { headers?: Record<string, string | number>; body?: Buffer | string } = {},
): Promise<Answer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: url.hostname, port: url.port, method, path: rawPath, headers: options.headers ?? {}, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const body = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            json: () => JSON.parse(body.toString("utf8")) as Record<string, unknown>,
          });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

const SCRIPT = { "x-requested-with": "test" };
const put = (base: string, rawPath: string, body: Buffer | string, headers: Record<string, string | number> = SCRIPT) =>
  request(base, "PUT", rawPath, { headers, body });

/** Files (not our temp files) under a folder, for "nothing partial was left" checks. */
function tempFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((name) => name.endsWith(".part"));
}

/** Polls a condition that becomes true when the server has handled an event it does not report. */
async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("files API", () => {
  let model: ModelServer;
  let running: RunningServer;
  let root: string;
  const ws = (user: string) => path.join(root, user);

  before(async () => {
    model = await startModelServer();
    running = await startServer({
      config: baseConfig(model.baseUrl, {}, { limits: { max_upload_bytes: 4096, workspace_bytes: 10_000 } }),
      secrets: { openai: { api_key: "sk-test-files" } },
    });
    root = path.join(running.configDir, "workspace");
    mkdirSync(ws("bob"), { recursive: true });
    writeFileSync(path.join(ws("bob"), "secret.txt"), "bob's secret");
    mkdirSync(ws("alice2"), { recursive: true });
    writeFileSync(path.join(ws("alice2"), "x.txt"), "alice2's file");
  });
  after(async () => {
    await running.close();
    await model.close();
  });

  test("an unused workspace lists as empty, with the limits", async () => {
    const answer = await request(running.url, "GET", "/files/nobody");
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.json(), {
      user_id: "nobody",
      path: "",
      entries: [],
      truncated: false,
      used_bytes: 0,
      limits: { max_upload_bytes: 4096, workspace_bytes: 10_000 },
    });
    assert.equal(existsSync(ws("nobody")), false, "listing does not create the workspace");
  });

  test("upload creates owner-only folders and files; the listing shows them", async () => {
    const created = await put(running.url, "/files/alice/notes/day%201/plan.md", "# Plan\n");
    assert.equal(created.status, 201);
    assert.deepEqual(created.json(), { path: "notes/day 1/plan.md", size: 7, created: true });
    const file = path.join(ws("alice"), "notes/day 1/plan.md");
    assert.equal(readFileSync(file, "utf8"), "# Plan\n");
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(path.join(ws("alice"), "notes")).mode & 0o777, 0o700);
    assert.equal(statSync(path.join(ws("alice"), "notes/day 1")).mode & 0o777, 0o700);
    const replaced = await put(running.url, "/files/alice/notes/day%201/plan.md", "# Plan v2\n");
    assert.equal(replaced.status, 200);
    assert.equal(replaced.json().created, false);

    const listing = await request(running.url, "GET", "/files/alice");
    assert.equal(listing.status, 200);
    const body = listing.json();
    const entries = body.entries as Record<string, unknown>[];
    assert.deepEqual(
      entries.map(({ path: where, type, size, mime }) => ({ path: where, type, size, mime })),
      [
        { path: "notes", type: "folder", size: 0, mime: undefined },
        { path: "notes/day 1", type: "folder", size: 0, mime: undefined },
        { path: "notes/day 1/plan.md", type: "file", size: 10, mime: "text/markdown" },
      ],
    );
    assert.ok(!Number.isNaN(Date.parse(String(entries[2]?.modified))));
    assert.equal(body.used_bytes, 10);
    const sub = await request(running.url, "GET", "/files/alice/notes/day%201");
    assert.equal(sub.status, 200);
    assert.deepEqual(
      (sub.json().entries as { path: string }[]).map((entry) => entry.path),
      ["notes/day 1/plan.md"],
    );
  });

  test("a download streams the bytes with its type, as an attachment; Range gives 206 and 416", async () => {
    const bytes = Buffer.from("0123456789abcdef");
    assert.equal((await put(running.url, "/files/alice/r%C3%A9sum%C3%A9%20%22v1%22.txt", bytes)).status, 201);
    const whole = await request(running.url, "GET", "/files/alice/r%C3%A9sum%C3%A9%20%22v1%22.txt");
    assert.equal(whole.status, 200);
    assert.deepEqual(whole.body, bytes);
    assert.equal(whole.headers["content-type"], "text/plain");
    assert.equal(whole.headers["content-length"], "16");
    assert.equal(whole.headers["accept-ranges"], "bytes");
    assert.equal(
      whole.headers["content-disposition"],
      `attachment; filename="r_sum_ _v1_.txt"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22v1%22.txt`,
    );
    assert.equal(whole.headers["x-content-type-options"], "nosniff");

    const part = await request(running.url, "GET", "/files/alice/r%C3%A9sum%C3%A9%20%22v1%22.txt", { headers: { range: "bytes=2-5" } });
    assert.equal(part.status, 206);
    assert.equal(part.body.toString(), "2345");
    assert.equal(part.headers["content-range"], "bytes 2-5/16");
    const tail = await request(running.url, "GET", "/files/alice/r%C3%A9sum%C3%A9%20%22v1%22.txt", { headers: { range: "bytes=-3" } });
    assert.equal(tail.status, 206);
    assert.equal(tail.body.toString(), "def");
    const open = await request(running.url, "GET", "/files/alice/r%C3%A9sum%C3%A9%20%22v1%22.txt", { headers: { range: "bytes=10-" } });
    assert.equal(open.body.toString(), "abcdef");
    const outside = await request(running.url, "GET", "/files/alice/r%C3%A9sum%C3%A9%20%22v1%22.txt", {
      headers: { range: "bytes=16-20" },
    });
    assert.equal(outside.status, 416);
    assert.equal(outside.json().code, "range_not_satisfiable");
    assert.equal(outside.headers["content-range"], "bytes */16");
    const stale = await request(running.url, "GET", "/files/alice/r%C3%A9sum%C3%A9%20%22v1%22.txt", {
      headers: { range: "bytes=2-5", "if-range": '"old"' },
    });
    assert.equal(stale.status, 200, "If-Range with another validator gets the whole file");
    const head = await request(running.url, "HEAD", "/files/alice/r%C3%A9sum%C3%A9%20%22v1%22.txt");
    assert.equal(head.status, 200);
    assert.equal(head.headers["content-length"], "16");
    assert.equal(head.body.length, 0);
    const missing = await request(running.url, "GET", "/files/alice/nope.txt");
    assert.equal(missing.status, 404);
    assert.match(String(missing.json().error), /no such file or folder: nope\.txt/);
    assert.equal(missing.json().code, "not_found");
  });

  test("no request reaches outside the workspace: encoded ../, %2e%2e, absolute paths, symlinks out, prefix siblings", async () => {
    mkdirSync(ws("alice"), { recursive: true });
    symlinkSync(ws("bob"), path.join(ws("alice"), "bob-link"));
    symlinkSync(path.join(ws("bob"), "secret.txt"), path.join(ws("alice"), "secret-link.txt"));
    symlinkSync(path.join(ws("bob"), "new.txt"), path.join(ws("alice"), "dangling.txt"));
    const escapes = [
      "/files/alice/../bob/secret.txt",
      "/files/alice/..%2Fbob%2Fsecret.txt",
      "/files/alice/%2e%2e/bob/secret.txt",
      "/files/alice/%2E%2E%2Fbob%2Fsecret.txt",
      "/files/alice/notes/..%2F..%2F..%2Fbob%2Fsecret.txt",
      "/files/alice//" + path.join(ws("bob"), "secret.txt").slice(1),
      "/files/alice/" + encodeURIComponent(path.join(ws("bob"), "secret.txt")),
      "/files/alice/bob-link/secret.txt",
      "/files/alice/secret-link.txt",
      "/files/alice/%2e%2e/alice2/x.txt",
      "/files/alice/..%2Falice2%2Fx.txt",
      "/files/alice/~/x.txt",
    ];
    for (const escape of escapes) {
      const got = await request(running.url, "GET", escape);
      assert.ok(got.status === 403 || got.status === 400, `GET ${escape}: ${got.status} ${got.body.toString()}`);
      assert.ok(["forbidden", "invalid_request"].includes(String(got.json().code)), `GET ${escape}: ${got.body.toString()}`);
      assert.doesNotMatch(got.body.toString(), /secret"|alice2's/, `GET ${escape} leaked content`);
      // An error names the path as the request gave it, never the workspace's real folder.
      assert.ok(!got.body.toString().includes(ws("alice")), `GET ${escape} names the server's folders: ${got.body.toString()}`);
      const put1 = await put(running.url, escape, "overwritten");
      assert.ok(put1.status === 403 || put1.status === 400, `PUT ${escape}: ${put1.status} ${put1.body.toString()}`);
      // (A symlink inside the workspace is itself deletable: that case is below.)
      if (escape.endsWith("secret-link.txt")) continue;
      const deleted = await request(running.url, "DELETE", escape, { headers: SCRIPT });
      assert.ok(deleted.status >= 400, `DELETE ${escape}: ${deleted.status}`);
    }
    // Writing through a dangling symlink would create the file outside.
    const dangling = await put(running.url, "/files/alice/dangling.txt", "x");
    assert.equal(dangling.status, 403);
    assert.equal(dangling.json().code, "forbidden");
    assert.match(String(dangling.json().error), /leads outside your workspace \(through a symlink\)/);
    assert.equal(existsSync(path.join(ws("bob"), "new.txt")), false);
    assert.equal(readFileSync(path.join(ws("bob"), "secret.txt"), "utf8"), "bob's secret");
    assert.equal(readFileSync(path.join(ws("alice2"), "x.txt"), "utf8"), "alice2's file");
    assert.deepEqual(readdirSync(ws("bob")).sort(), ["secret.txt"]);
    // Deleting a symlink removes the link, never what it points at.
    const unlinked = await request(running.url, "DELETE", "/files/alice/secret-link.txt", { headers: SCRIPT });
    assert.equal(unlinked.status, 200);
    assert.equal(existsSync(path.join(ws("alice"), "secret-link.txt")), false);
    assert.equal(readFileSync(path.join(ws("bob"), "secret.txt"), "utf8"), "bob's secret");
    // The listing shows neither the link out nor anything behind it.
    const listed = (await request(running.url, "GET", "/files/alice")).json().entries as { path: string }[];
    assert.ok(!listed.some((entry) => /bob-link|dangling/.test(entry.path)), JSON.stringify(listed));
    // A user id that is not one.
    const notAUser = await request(running.url, "GET", "/files/..");
    assert.deepEqual([notAUser.status, notAUser.json().code], [400, "invalid_user_id"]);
    assert.equal((await request(running.url, "GET", "/files/%2e%2e/bob/secret.txt")).status, 400);
  });

  test("uploads over limits.max_upload_bytes get 413 and leave nothing, declared or streamed", async () => {
    const big = Buffer.alloc(5000, 1);
    const declared = await put(running.url, "/files/carol/big.bin", big);
    assert.equal(declared.status, 413);
    assert.equal(declared.json().limit, "limits.max_upload_bytes");
    assert.equal(declared.json().code, "file_too_large");
    assert.match(String(declared.json().error), /larger than 4 KiB.*limits\.max_upload_bytes/);
    // Chunked: no Content-Length, so the server finds out while reading.
    const streamed = await put(running.url, "/files/carol/big.bin", big, { ...SCRIPT, "transfer-encoding": "chunked" });
    assert.equal(streamed.status, 413);
    assert.equal(existsSync(path.join(ws("carol"), "big.bin")), false);
    assert.deepEqual(tempFiles(ws("carol")), []);
    assert.equal((await put(running.url, "/files/carol/ok.bin", Buffer.alloc(4096, 2))).status, 201, "exactly the limit is fine");
  });

  test("uploads past limits.workspace_bytes get 413; replacing a file counts only the difference", async () => {
    for (const n of [1, 2]) assert.equal((await put(running.url, `/files/dave/f${n}.bin`, Buffer.alloc(4000))).status, 201);
    const full = await put(running.url, "/files/dave/f3.bin", Buffer.alloc(4000));
    assert.equal(full.status, 413);
    assert.equal(full.json().limit, "limits.workspace_bytes");
    assert.equal(full.json().code, "workspace_full");
    assert.match(String(full.json().error), /workspace is full.*limits\.workspace_bytes.*Delete files/);
    assert.equal(existsSync(path.join(ws("dave"), "f3.bin")), false);
    assert.deepEqual(tempFiles(ws("dave")), []);
    assert.equal((await put(running.url, "/files/dave/f2.bin", Buffer.alloc(4096))).status, 200, "8096 bytes after the replacement");
    assert.equal((await request(running.url, "DELETE", "/files/dave/f1.bin", { headers: SCRIPT })).status, 200);
    assert.equal((await put(running.url, "/files/dave/f3.bin", Buffer.alloc(4000))).status, 201, "room again after a delete");
  });

  test("concurrent uploads of one path: the last one to complete wins, never a mix", async () => {
    const url = new URL(running.url);
    const first = Buffer.alloc(3000, "A");
    const second = Buffer.alloc(3000, "B");
    // The first upload sends half its body and waits; the second completes; then the first does.
    const slow = http.request({
      host: url.hostname,
      port: url.port,
      method: "PUT",
      path: "/files/erin/same.txt",
      headers: { ...SCRIPT, "content-length": first.length },
      agent: false,
    });
    const slowAnswer = new Promise<number>((resolve, reject) => {
      slow.on("response", (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      slow.on("error", reject);
    });
    slow.write(first.subarray(0, 1500));
    await until(() => tempFiles(ws("erin")).length === 1, "the first upload's temp file");
    assert.equal((await put(running.url, "/files/erin/same.txt", second)).status, 201);
    assert.deepEqual(readFileSync(path.join(ws("erin"), "same.txt")), second);
    slow.end(first.subarray(1500));
    assert.equal(await slowAnswer, 200);
    assert.deepEqual(readFileSync(path.join(ws("erin"), "same.txt")), first);
    // Many at once: the file is exactly one of them.
    const bodies = ["C", "D", "E", "F", "G", "H"].map((letter) => Buffer.alloc(1000, letter));
    const answers = await Promise.all(bodies.map((body) => put(running.url, "/files/erin/same.txt", body)));
    assert.ok(answers.every((answer) => answer.status === 200));
    const final = readFileSync(path.join(ws("erin"), "same.txt"));
    assert.ok(
      bodies.some((body) => body.equals(final)),
      "the file is one whole upload",
    );
    assert.deepEqual(tempFiles(ws("erin")), []);
  });

  test("an upload cut off half-way leaves no file and no temp file", async () => {
    const url = new URL(running.url);
    const socket = net.connect(Number(url.port), url.hostname);
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.write(`PUT /files/frank/report.csv HTTP/1.1\r\nHost: ${url.host}\r\nX-Requested-With: test\r\nContent-Length: 2000\r\n\r\n`);
    socket.write(Buffer.alloc(1000, "x"));
    await until(() => tempFiles(ws("frank")).length === 1, "the temp file of the upload");
    socket.destroy();
    await until(() => tempFiles(ws("frank")).length === 0, "the temp file to be removed");
    assert.deepEqual(readdirSync(ws("frank")), []);
    const listing = await request(running.url, "GET", "/files/frank");
    assert.deepEqual(listing.json().entries, []);
  });

  test("delete: a file, an empty folder; a folder with files is refused; the root cannot go", async () => {
    await put(running.url, "/files/gina/docs/a.txt", "a");
    const notEmpty = await request(running.url, "DELETE", "/files/gina/docs", { headers: SCRIPT });
    assert.deepEqual([notEmpty.status, notEmpty.json().code], [409, "conflict"]);
    const removed = await request(running.url, "DELETE", "/files/gina/docs/a.txt", { headers: SCRIPT });
    assert.deepEqual([removed.status, removed.json()], [200, { path: "docs/a.txt", deleted: true }]);
    assert.equal((await request(running.url, "DELETE", "/files/gina/docs/", { headers: SCRIPT })).status, 200);
    assert.deepEqual(readdirSync(ws("gina")), []);
    assert.equal((await request(running.url, "DELETE", "/files/gina/docs", { headers: SCRIPT })).status, 404);
    assert.equal((await request(running.url, "DELETE", "/files/gina", { headers: SCRIPT })).status, 400);
    await put(running.url, "/files/gina/plain.txt", "p");
    const blocked = await put(running.url, "/files/gina/plain.txt/inner.txt", "x");
    assert.deepEqual(
      [blocked.status, blocked.json().code, blocked.json().error],
      [409, "conflict", "a file is in the way: part of plain.txt/inner.txt is a file, not a folder"],
    );
    assert.equal((await put(running.url, "/files/gina/docs2", "x")).status, 201);
    await put(running.url, "/files/gina/dir/x.txt", "x");
    assert.equal((await put(running.url, "/files/gina/dir", "x")).status, 409, "a folder where a file was named");
    for (const name of ["plain.txt", "docs2", "dir/x.txt", "dir"])
      await request(running.url, "DELETE", `/files/gina/${name}`, { headers: SCRIPT });
    assert.equal((await request(running.url, "DELETE", "/files/gina/", { headers: SCRIPT })).status, 400);
    assert.equal(existsSync(ws("gina")), true);
  });

  test("a cross-site form cannot upload or delete; foreign origins and hosts are refused; only GET, HEAD, PUT, DELETE", async () => {
    const form = await put(running.url, "/files/hal/x.txt", "x", { "content-type": "text/plain" });
    assert.equal(form.status, 403);
    assert.match(String(form.json().error), /X-Requested-With/);
    assert.equal((await request(running.url, "DELETE", "/files/alice/notes/day%201/plan.md")).status, 403);
    const foreign = await put(running.url, "/files/hal/x.txt", "x", { ...SCRIPT, origin: "http://evil.example" });
    assert.equal(foreign.status, 403);
    assert.match(String(foreign.json().error), /Origin "http:\/\/evil\.example" is not allowed/);
    assert.equal((await request(running.url, "GET", "/files/alice", { headers: { origin: "http://evil.example" } })).status, 403);
    const url = new URL(running.url);
    assert.equal((await request(running.url, "GET", "/files/alice", { headers: { origin: `http://${url.host}` } })).status, 200);
    assert.equal((await request(running.url, "GET", "/files/alice", { headers: { host: "evil.example" } })).status, 403);
    assert.equal(existsSync(ws("hal")), false);
    const post = await request(running.url, "POST", "/files/hal/x.txt", { headers: SCRIPT, body: "x" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, "GET, HEAD, PUT, DELETE");
    assert.equal((await request(running.url, "OPTIONS", "/files/hal/x.txt")).status, 405);
  });

  test("files_changed reaches the user's streaming sockets after an upload and a delete; seed sockets get nothing", async () => {
    const { client: streaming } = await connectUser(running, "ivy", "?stream=1");
    const { client: seed } = await connectUser(running, "ivy");
    const { client: other } = await connectUser(running, "jack", "?stream=1");
    try {
      assert.equal((await put(running.url, "/files/ivy/in/data.csv", "a,b\n")).status, 201);
      assert.deepEqual(await streaming.next(), { type: "files_changed", user_id: "ivy", cause: "upload", paths: ["in/data.csv"] });
      assert.equal((await request(running.url, "DELETE", "/files/ivy/in/data.csv", { headers: SCRIPT })).status, 200);
      assert.deepEqual(await streaming.next(), { type: "files_changed", user_id: "ivy", cause: "delete", paths: ["in/data.csv"] });
      // The next frame of the seed socket is its answer: nothing came before it.
      seed.send({ message: "hello" });
      assert.deepEqual(Object.keys(await seed.next()), ["message", "user_id", "session_id"]);
      other.send({ type: "history" });
      assert.equal((await other.next()).type, "history", "another user's socket got nothing before");
    } finally {
      await Promise.all([streaming.close(), seed.close(), other.close()]);
    }
  });
});

describe("files API with a token", () => {
  let model: ModelServer;
  let running: RunningServer;

  before(async () => {
    model = await startModelServer();
    running = await startServer({ config: baseConfig(model.baseUrl, {}, { server: { auth_token: "files-token-123" } }) });
  });
  after(async () => {
    await running.close();
    await model.close();
  });

  test("every method needs the token; PUT and DELETE need it in a header", async () => {
    assert.equal((await request(running.url, "GET", "/files/kim")).status, 401);
    const wrong = await request(running.url, "GET", "/files/kim", { headers: { authorization: "Bearer nope" } });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers["www-authenticate"], "Bearer");
    assert.equal((await put(running.url, "/files/kim/a.txt", "a")).status, 401);
    assert.equal((await put(running.url, "/files/kim/a.txt", "a", { authorization: "Bearer files-token-123" })).status, 201);
    assert.equal((await request(running.url, "GET", "/files/kim/a.txt?token=files-token-123")).body.toString(), "a");
    const queryOnly = await put(running.url, "/files/kim/b.txt?token=files-token-123", "b", {});
    assert.equal(queryOnly.status, 403, "a token in the URL could come from a form");
    assert.equal(
      (await request(running.url, "DELETE", "/files/kim/a.txt", { headers: { authorization: "Bearer nope", ...SCRIPT } })).status,
      401,
    );
    assert.equal(
      (await request(running.url, "DELETE", "/files/kim/a.txt", { headers: { authorization: "Bearer files-token-123" } })).status,
      200,
    );
  });
});

describe("files_changed after the agent's tool calls", () => {
  let model: ModelServer;
  let running: RunningServer;

  before(async () => {
    model = await startModelServer({ responder: (request) => toolDirective(request) ?? { content: "ok" } });
    running = await startServer({
      config: baseConfig(model.baseUrl, { filesystem: filesystemEntry }),
      secrets: { openai: { api_key: "sk-test-files" } },
    });
  });
  after(async () => {
    await running.close();
    await model.close();
  });

  /** The frames of one turn, from its turn_start to its answer. */
  async function turn(client: Awaited<ReturnType<typeof connectUser>>["client"], message: string): Promise<Frame[]> {
    client.send({ message });
    await client.nextMatching((frame) => frame.type === "turn_start");
    const frames: Frame[] = [];
    for (;;) {
      const frame = await client.next(60_000);
      frames.push(frame);
      if (frame.type === "answer" || frame.type === "error") return frames;
    }
  }

  test("a writing tool's end is followed by files_changed on every streaming socket; a reading tool's is not", async () => {
    const { client: first } = await connectUser(running, "liz", "?stream=1");
    const { client: second } = await connectUser(running, "liz", "?stream=1");
    try {
      const frames = await turn(first, 'CALL filesystem_write_file {"path":"summary.md","content":"# Summary\\n"}');
      const end = frames.findIndex((frame) => frame.type === "tool_end");
      assert.equal(frames[end]?.ok, true, JSON.stringify(frames));
      const changed = frames[end + 1];
      assert.deepEqual(changed, {
        type: "files_changed",
        user_id: "liz",
        cause: "tool",
        paths: [],
        turn_id: frames[end]?.turn_id,
        call_id: frames[end]?.call_id,
      });
      assert.deepEqual(await second.nextMatching((frame) => frame.type === "files_changed"), changed);
      const listed = await request(running.url, "GET", "/files/liz");
      assert.deepEqual(
        (listed.json().entries as { path: string }[]).map((entry) => entry.path),
        ["summary.md"],
      );

      const reading = await turn(first, 'CALL filesystem_list_directory {"path":"."}');
      assert.ok(reading.some((frame) => frame.type === "tool_end"));
      assert.ok(!reading.some((frame) => frame.type === "files_changed"), JSON.stringify(reading));
    } finally {
      await Promise.all([first.close(), second.close()]);
    }
  });
});
