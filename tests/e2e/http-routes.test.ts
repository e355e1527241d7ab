// The HTTP routes (lib/http/routes.ts: node:http, no framework) and the served page, against the
// real server in-process on port 0.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { startModelServer, type ModelServer } from "../helpers/model-server.ts";
import { PAGE_MODULES } from "../../lib/http/static-files.ts";
import { ask, baseConfig, connectUser, ROOT, startServer, testServerEntry, type RunningServer } from "../helpers/harness.ts";

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

let model: ModelServer;
let running: RunningServer;

before(async () => {
  model = await startModelServer();
  running = await startServer({
    config: baseConfig(model.baseUrl, { test: testServerEntry, broken: { command: "definitely-not-installed-xyz" } }),
    secrets: { openai: { api_key: "sk-test-http" } },
  });
});
after(async () => {
  await running.close();
  await model.close();
});

interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

async function request(pathname: string, method = "GET"): Promise<Answer> {
  const res = await fetch(`${running.url}${pathname}`, { method });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

async function getJson(pathname: string): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const { status, headers, text } = await request(pathname);
  assert.match(headers.get("content-type") ?? "", /^application\/json/, `content-type of ${pathname}`);
  return { status, headers, body: JSON.parse(text) as Record<string, unknown> };
}

// ---- point 10 ---------------------------------------------------------------------------------

test("GET / serves index.html as text/html", async () => {
  const { status, headers, text } = await request("/");
  assert.equal(status, 200);
  assert.match(headers.get("content-type") ?? "", /^text\/html/);
  assert.equal(text, readFileSync(path.join(ROOT, "index.html"), "utf8"));
});

test("GET /health is exactly {status, active_sessions} and counts a new user's session", async () => {
  const before = await getJson("/health");
  assert.equal(before.status, 200);
  assert.deepEqual(Object.keys(before.body), ["status", "active_sessions"]);
  assert.equal(before.body.status, "healthy");
  const count = before.body.active_sessions as number;
  assert.ok(Number.isInteger(count) && count >= 0);

  const { client } = await connectUser(running, "health_user");
  try {
    const afterConnect = await getJson("/health");
    assert.deepEqual(afterConnect.body, { status: "healthy", active_sessions: count + 1 });
  } finally {
    await client.close();
  }
});

test("GET /sessions lists the user ids and the total", async () => {
  const { client } = await connectUser(running, "listed_user");
  try {
    const { status, body } = await getJson("/sessions");
    assert.equal(status, 200);
    assert.deepEqual(Object.keys(body), ["active_sessions", "total_sessions"]);
    const ids = body.active_sessions as string[];
    assert.ok(Array.isArray(ids));
    assert.ok(ids.includes("listed_user"), JSON.stringify(ids));
    assert.equal(body.total_sessions, ids.length);
    assert.equal(body.total_sessions, running.server.sessions.size);
  } finally {
    await client.close();
  }
});

test("GET /sessions/<user_id> describes the session and each MCP server", async () => {
  const { client, welcome } = await connectUser(running, "info_user");
  try {
    // A turn waits for every MCP server to be ready or failed, so after the answer both have settled.
    const answer = await ask(client, "hello");
    assert.equal(answer.message, "echo: hello");
    const offered = (model.requests.at(-1)?.tools ?? []).filter((tool) => tool.function.name.startsWith("test_"));

    const { status, body } = await getJson("/sessions/info_user");
    assert.equal(status, 200);
    assert.equal(body.user_id, "info_user");
    assert.equal(body.session_id, welcome.session_id);
    assert.match(String(body.created_at), ISO_TIME);
    assert.match(String(body.last_activity), ISO_TIME);
    assert.ok(Date.parse(String(body.last_activity)) >= Date.parse(String(body.created_at)));
    assert.equal(body.message_count, 1);
    assert.equal(body.open_sockets, 1);

    const servers = body.mcp_servers as Record<string, unknown>[];
    assert.deepEqual(servers.map((server) => server.name).sort(), ["broken", "test"]);
    const testServer = servers.find((server) => server.name === "test")!;
    assert.equal(testServer.state, "ready");
    assert.ok(offered.length > 0, "the model was offered the test server's tools");
    assert.equal(testServer.tools, offered.length);
    const broken = servers.find((server) => server.name === "broken")!;
    assert.equal(broken.state, "failed");
    assert.equal(broken.tools, 0);
    assert.match(String(broken.error), /not found/i);
  } finally {
    await client.close();
  }
});

test("GET /sessions/<user_id> of an unknown user is a 404 with a JSON error", async () => {
  for (const pathname of ["/sessions/nobody_here", "/sessions/a%2Fb"]) {
    const { status, body } = await getJson(pathname);
    assert.equal(status, 404, pathname);
    assert.deepEqual(body, { error: body.error, code: "not_found" });
    assert.equal(typeof body.error, "string");
  }
});

// ---- point 11 ---------------------------------------------------------------------------------

test("unknown paths are a 404 with a JSON {error, code} body", async () => {
  for (const pathname of ["/nope", "/health/extra", "/sessions/", "/index.html", "/ws/alice", "/ws", "//health"]) {
    const { status, body } = await getJson(pathname);
    assert.equal(status, 404, pathname);
    assert.deepEqual(Object.keys(body), ["error", "code"], pathname);
    assert.equal(body.code, "not_found", pathname);
    assert.ok(typeof body.error === "string" && body.error.length > 0, pathname);
  }
});

test("a wrong method on a known path is a 405 with an Allow header and a JSON error", async () => {
  for (const [method, pathname] of [
    ["POST", "/health"],
    ["DELETE", "/sessions"],
    ["PUT", "/"],
    ["PATCH", "/sessions/info_user"],
    ["OPTIONS", "/health"],
  ] as const) {
    const { status, headers, text } = await request(pathname, method);
    assert.equal(status, 405, `${method} ${pathname}`);
    const allow = (headers.get("allow") ?? "").split(",").map((part) => part.trim());
    assert.ok(allow.includes("GET") && allow.includes("HEAD"), `Allow: ${headers.get("allow")}`);
    assert.match(headers.get("content-type") ?? "", /^application\/json/);
    assert.equal(typeof (JSON.parse(text) as { error: unknown }).error, "string");
  }
});

test("HEAD answers like GET without a body", async () => {
  for (const pathname of ["/", "/health", "/sessions"]) {
    const get = await request(pathname);
    const head = await request(pathname, "HEAD");
    assert.equal(head.status, 200, pathname);
    assert.equal(head.text, "", pathname);
    assert.equal(head.headers.get("content-type"), get.headers.get("content-type"), pathname);
    if (pathname === "/") assert.equal(head.headers.get("content-length"), String(Buffer.byteLength(get.text)));
  }
  const missing = await request("/nope", "HEAD");
  assert.equal(missing.status, 404);
  assert.equal(missing.text, "");
});

// ---- point 24 ---------------------------------------------------------------------------------

test("the page builds its socket URL from location, never a hardcoded localhost:8000", async () => {
  const texts = await Promise.all(
    ["/", ...PAGE_MODULES.map((name) => `/page/${name}`)].map(async (pathname) => (await request(pathname)).text),
  );
  const text = texts.join("\n");
  assert.doesNotMatch(text, /localhost:8000/);
  assert.match(text, /\blocation\.(host|origin)\b|\(location, /);
  // Model output is shown as text or sanitised HTML (the page's own tests look closer).
  assert.match(text, /\btextContent\b|\bDOMPurify\b/);
});

test("the page's files are served from a fixed list: every module of page/, with an ETag, and nothing else", async () => {
  const onDisk = readdirSync(path.join(ROOT, "page"))
    .filter((name) => name.endsWith(".js"))
    .sort();
  assert.deepEqual([...PAGE_MODULES].sort(), onDisk, "PAGE_MODULES lists every module in page/");
  for (const [pathname, type] of [
    ["/", /^text\/html; charset=utf-8$/],
    ["/page/style.css", /^text\/css; charset=utf-8$/],
    ...PAGE_MODULES.map((name) => [`/page/${name}`, /^text\/javascript; charset=utf-8$/] as const),
  ] as const) {
    const first = await request(pathname);
    assert.equal(first.status, 200, pathname);
    assert.match(first.headers.get("content-type") ?? "", type, pathname);
    assert.equal(first.headers.get("x-content-type-options"), "nosniff", pathname);
    assert.equal(first.headers.get("cache-control"), "no-cache", pathname);
    const file = pathname === "/" ? "index.html" : pathname.slice(1);
    assert.equal(first.text, readFileSync(path.join(ROOT, file), "utf8"), pathname);
    const etag = first.headers.get("etag") ?? "";
    assert.match(etag, /^"[\w-]+"$/, pathname);
    const again = await fetch(`${running.url}${pathname}`, { headers: { "if-none-match": etag } });
    assert.equal(again.status, 304, pathname);
    assert.equal(await again.text(), "");
  }
  // Every relative import of a module names a module of the list.
  for (const name of PAGE_MODULES) {
    const text = readFileSync(path.join(ROOT, "page", name), "utf8");
    for (const found of text.matchAll(/^import [^"]*"\.\/([^"]+)";$/gm))
      assert.ok(
        PAGE_MODULES.some((other) => other === found[1]),
        `${name} imports ${found[1]}`,
      );
  }
  for (const pathname of [
    "/page",
    "/page/",
    "/page/index.html",
    "/page/tsconfig.json",
    "/page/globals.d.ts",
    "/page/APP.js",
    "/page/app.js/",
    "/page/../server.ts",
    "/page/%2e%2e/server.ts",
    "/page/..%2Fserver.ts",
    "/style.css",
    "/app.js",
  ]) {
    const { status, headers, text } = await request(pathname);
    assert.equal(status, 404, pathname);
    assert.match(headers.get("content-type") ?? "", /^application\/json/, pathname);
    assert.equal((JSON.parse(text) as { code?: unknown }).code, "not_found", pathname);
  }
});

test("the page's policy allows scripts and styles only at its own paths, with no inline code", async () => {
  const { headers, text } = await request("/");
  // Two policies (a resource must pass both): fetch joins them with ", ".
  const policies = (headers.get("content-security-policy") ?? "").split(", ");
  assert.equal(policies.length, 2);
  const [self, paths] = policies.map((policy) => new Map(policy.split("; ").map((part) => [part.split(" ")[0], part.split(" ").slice(1)])));
  assert.deepEqual(self?.get("default-src"), ["'none'"]);
  assert.deepEqual(self?.get("script-src"), ["'self'"]);
  assert.deepEqual(self?.get("style-src"), ["'self'"]);
  assert.deepEqual(
    paths?.get("script-src"),
    ["/vendor/marked.js", "/vendor/purify.js", ...PAGE_MODULES.map((name) => `/page/${name}`)].map((script) => `*:*${script}`),
  );
  assert.deepEqual(paths?.get("style-src"), ["*:*/page/style.css"]);
  assert.doesNotMatch(headers.get("content-security-policy") ?? "", /sha256-|unsafe-inline|unsafe-eval|\/files\//);
  assert.equal(headers.get("referrer-policy"), "no-referrer");
  // No inline script or style block, no inline handler: the page is only its files.
  assert.doesNotMatch(text, /<script>|<style|\son[a-z]+=/i);
  const scripts = [...text.matchAll(/<script[^>]*src="([^"]+)"/g)].map((found) => found[1]);
  assert.deepEqual(scripts, ["/vendor/marked.js", "/vendor/purify.js", "/page/app.js"]);
});
