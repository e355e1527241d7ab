// OAuth for a remote MCP server, per user: the 401 becomes an auth_required frame with the
// authorization URL, the browser's return to /oauth/callback brings the server's tools into the
// same session (auth_completed on every tab), tokens are sealed in the store, another user sees
// none of it, and refreshes never present a refresh token twice.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { readFileSync, statSync } from "node:fs";
import Database from "better-sqlite3";
import { afterTool, lastUserText, startModelServer, toolDirective, type ModelServer } from "../helpers/model-server.ts";
import { baseConfig, connectUser, startServer, type Frame, type RunningServer, type TestClient } from "../helpers/harness.ts";
import { startOAuthMcpServer, type OAuthMcpServer } from "../helpers/oauth-mcp-server.ts";

let model: ModelServer;
let remote: OAuthMcpServer;
let running: RunningServer;

before(async () => {
  model = await startModelServer({
    responder: (request) => {
      // Three calls of one step run at once: their token refreshes race.
      if (lastUserText(request) === "THREE AT ONCE" && !afterTool(request))
        return { toolCalls: [0, 1, 2].map(() => ({ name: "protected_whoami", arguments: "{}" })) };
      return toolDirective(request) ?? { content: "ok" };
    },
  });
  // Tokens that expire within the refresh margin: every use refreshes them first.
  remote = await startOAuthMcpServer({ expiresInSeconds: 30 });
  running = await startServer({
    config: baseConfig(model.baseUrl, { protected: { transport: "streamable_http", url: remote.url } }),
    secrets: { openai: { api_key: "sk-test-oauth" } },
    keepDir: true,
  });
});
after(async () => {
  await running?.close();
  await remote?.close();
  await model?.close();
});

const byName = (servers: Frame[], name: string) => servers.find((server) => server.name === name);

/** The browser: follows the authorization server's redirect to our callback; returns the callback's answer. */
async function signIn(authorizationUrl: string): Promise<{ status: number; text: string; callback: string }> {
  const approved = await fetch(authorizationUrl, { redirect: "manual" });
  const callback = approved.headers.get("location") ?? "";
  const back = await fetch(callback);
  return { status: back.status, text: await back.text(), callback };
}

async function authRequired(client: TestClient): Promise<string> {
  const frame = await client.nextMatching((candidate) => candidate.type === "auth_required");
  assert.equal(frame.server, "protected");
  return String(frame.url);
}

test("a 401 asks the user to authorize; after the callback the server's tools are there in the same session, on every tab", async () => {
  const { client } = await connectUser(running, "alice", "?stream=1");
  const { client: otherTab } = await connectUser(running, "alice", "?stream=1");
  try {
    client.send({ message: "hello" });
    const url = await authRequired(client);
    const authorization = new URL(url);
    assert.equal(authorization.searchParams.get("code_challenge_method"), "S256");
    assert.equal(authorization.searchParams.get("resource"), remote.url);
    assert.equal(authorization.searchParams.get("scope"), "tools");
    assert.match(authorization.searchParams.get("redirect_uri") ?? "", /\/oauth\/callback$/);
    await client.nextMatching((frame) => frame.type === "answer");
    const waiting = await client.serversMatching((servers) => byName(servers, "protected")?.needs_auth === true);
    assert.match(String(byName(waiting, "protected")?.error), /needs your authorization: open http:\/\/.*Connect protected/);

    const answer = await signIn(url);
    assert.equal(answer.status, 200, answer.text);
    assert.match(answer.text, /Signed in to protected/);
    await client.nextMatching((frame) => frame.type === "auth_completed" && frame.server === "protected");
    await otherTab.nextMatching((frame) => frame.type === "auth_completed" && frame.server === "protected");
    await client.serversMatching((servers) => byName(servers, "protected")?.state === "ready" && byName(servers, "protected")?.tools === 1);

    client.send({ message: "CALL protected_whoami {}" });
    const result = await client.nextMatching((frame) => frame.type === "answer");
    assert.match(String(result.message), /^RESULT token /);

    // The same callback again: the state is single-use.
    const replay = await fetch(answer.callback);
    assert.equal(replay.status, 400);
    assert.match(await replay.text(), /already used or is unknown/);
  } finally {
    await client.close();
    await otherTab.close();
  }
});

test("another user sees neither the server's tokens nor its tools: they are asked to authorize for themselves", async () => {
  const { client } = await connectUser(running, "bob", "?stream=1");
  try {
    client.send({ message: "hello" });
    await authRequired(client);
    await client.nextMatching((frame) => frame.type === "answer");
    const servers = await client.serversMatching((list) => byName(list, "protected")?.needs_auth === true);
    assert.equal(byName(servers, "protected")?.tools, 0);
  } finally {
    await client.close();
  }
});

test("tokens are sealed at rest: the database never holds them in the clear; the key file is owner-only", () => {
  const db = new Database(path.join(running.configDir, "data/sessions.db"), { readonly: true });
  try {
    const rows = db.prepare("SELECT user_id, kind, name, value FROM user_data").all() as { user_id: string; value: string }[];
    assert.ok(rows.some((row) => row.user_id === "alice"));
    const all = rows.map((row) => row.value).join("\n");
    for (const token of remote.tokensIssued) assert.ok(!all.includes(token), "an access token is stored in the clear");
    assert.ok(rows.every((row) => row.value.startsWith("v1:")));
  } finally {
    db.close();
  }
  const key = path.join(running.configDir, "data/oauth.key");
  assert.equal(statSync(key).mode & 0o777, 0o600);
  assert.ok(readFileSync(key, "utf8").trim().length > 40);
});

test("concurrent calls with expiring tokens refresh, and no refresh token is ever presented twice", async () => {
  const { client } = await connectUser(running, "alice", "?stream=1");
  try {
    const before = remote.refreshes;
    client.send({ message: "THREE AT ONCE" });
    const ends: Frame[] = [];
    for (let i = 0; i < 3; i++) ends.push(await client.nextMatching((frame) => frame.type === "tool_end"));
    assert.deepEqual(
      ends.map((end) => end.ok),
      [true, true, true],
      JSON.stringify(ends),
    );
    await client.nextMatching((frame) => frame.type === "answer");
    assert.ok(remote.refreshes > before, "the tokens were refreshed before they expired");
    assert.equal(remote.reusedRefreshTokens, 0);
  } finally {
    await client.close();
  }
});

test("a seed client is told which server needs authorization and which page to visit", async () => {
  const { client } = await connectUser(running, "carol");
  try {
    client.send({ message: "hello" });
    const error = await client.nextMatching((frame) => typeof frame.error === "string");
    assert.match(String(error.error), /MCP server "protected" needs your authorization: open http:\/\/\S+\/ and click "Connect protected"/);
  } finally {
    await client.close();
  }
});

test("a callback with an unknown state or no state is refused with a page that says why", async () => {
  const none = await fetch(`${running.url}/oauth/callback?code=x`);
  assert.equal(none.status, 400);
  assert.match(await none.text(), /no state/);
  const forged = await fetch(`${running.url}/oauth/callback?code=x&state=forged`);
  assert.equal(forged.status, 400);
  assert.equal((await fetch(`${running.url}/oauth/client-metadata.json`)).status, 404, "no metadata document without an https public_url");
});
