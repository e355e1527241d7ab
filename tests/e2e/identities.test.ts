// Per-user identities. With server.auth.mode jwt or users a token opens only its
// own user id, /sessions shows only the caller's own session, and the admin token sees everything.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { rmSync, utimesSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK } from "jose";
import { startModelServer } from "../helpers/model-server.ts";
import { ask, baseConfig, connect, makeConfigDir, readLog, ROOT, startServer, until, type RunningServer } from "../helpers/harness.ts";
import { rawRequest, upgradeHeaders } from "../helpers/raw-ws.ts";
import { parseConfig, ConfigError } from "../../lib/config.ts";
import { hashToken } from "../../lib/auth/token-hash.ts";

const model = await startModelServer();
const servers: RunningServer[] = [];
const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const server of servers) await server.close();
  for (const close of closers) await close();
  await model.close();
});

const HS_SECRET = "an-hs256-secret-that-is-long-enough-0123456789";
const ADMIN = "admin-token-for-tests-4242";

async function start(auth: Record<string, unknown>, files: Record<string, string> = {}): Promise<RunningServer> {
  const dir = makeConfigDir({
    config: baseConfig(model.baseUrl, {}, { server: { auth }, session: { store: "memory" } }),
    secrets: { openai: { api_key: "sk-identities-test" } },
  });
  closers.push(async () => rmSync(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  const running = await startServer({ configDir: dir });
  servers.push(running);
  return running;
}

function hs256(claims: Record<string, unknown>, secret = HS_SECRET) {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuedAt();
  // A token must carry an expiry; the tests' tokens last five minutes unless they say otherwise.
  if (!("exp" in claims)) jwt.setExpirationTime("5m");
  return jwt.sign(new TextEncoder().encode(secret));
}

/** The upgrade's status for /ws/<user> with this token (101 when it opens). */
async function upgradeStatus(
  running: RunningServer,
  userId: string,
  token: string | undefined,
): Promise<{ status: number; error: unknown }> {
  const host = new URL(running.url).host;
  const query = token === undefined ? "" : `?token=${encodeURIComponent(token)}`;
  const answer = await rawRequest(running.url, `/ws/${userId}${query}`, { headers: upgradeHeaders(host) });
  return { status: answer.status, error: answer.json?.error };
}

async function getJson(running: RunningServer, pathname: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${running.url}${pathname}`, { headers });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

test("jwt (HS256): a token opens only its subject's user id; /sessions shows only the caller's session; the admin token sees all", async () => {
  const running = await start({ mode: "jwt", admin_token: ADMIN, jwt: { secret: HS_SECRET } });
  const alice = await hs256({ sub: "alice" });
  const bob = await hs256({ sub: "bob" });

  // Alice chats as alice, Bob as bob.
  const aliceClient = await connect(running.wsUrl("alice", `?token=${alice}`));
  assert.equal((await aliceClient.next()).user_id, "alice");
  assert.equal((await ask(aliceClient, "hello")).message, "echo: hello");
  const bobClient = await connect(running.wsUrl("bob"), { headers: { authorization: `Bearer ${bob}` } });
  assert.equal((await bobClient.next()).user_id, "bob");

  // Alice's token does not open Bob, nor show his session.
  const refused = await upgradeStatus(running, "bob", alice);
  assert.equal(refused.status, 403);
  assert.match(String(refused.error), /another user id/);
  assert.equal((await getJson(running, "/sessions/bob", { authorization: `Bearer ${alice}` })).status, 403);
  const own = await getJson(running, "/sessions/alice", { authorization: `Bearer ${alice}` });
  assert.equal(own.status, 200);
  assert.equal(own.body.user_id, "alice");
  assert.deepEqual((await getJson(running, `/sessions?token=${alice}`)).body, { active_sessions: ["alice"], total_sessions: 1 });

  // No token, a bad signature, an expired token, a token not yet valid, a subject that is not a user id: 401 with the reason.
  assert.equal((await upgradeStatus(running, "alice", undefined)).status, 401);
  assert.equal((await getJson(running, "/sessions")).status, 401);
  const forged = await hs256({ sub: "alice" }, "another-secret-of-the-same-good-length-000000");
  assert.match(String((await upgradeStatus(running, "alice", forged)).error), /signature/);
  const expired = await hs256({ sub: "alice", exp: Math.floor(Date.now() / 1000) - 3600 });
  assert.match(String((await upgradeStatus(running, "alice", expired)).error), /expired/);
  const early = await hs256({ sub: "alice", nbf: Math.floor(Date.now() / 1000) + 3600, exp: Math.floor(Date.now() / 1000) + 3900 });
  assert.match(String((await upgradeStatus(running, "alice", early)).error), /nbf/);
  assert.match(String((await upgradeStatus(running, "alice", await hs256({ sub: "../x" }))).error), /subject/);
  assert.equal((await upgradeStatus(running, "alice", "not.a.jwt")).status, 401);
  // A token good forever, or for longer than server.auth.max_token_age_seconds (a day by default), is refused.
  const forever = await new SignJWT({ sub: "alice" })
    .setProtectedHeader({ alg: "HS256" })
    .setIssuedAt()
    .sign(new TextEncoder().encode(HS_SECRET));
  const noExpiry = await upgradeStatus(running, "alice", forever);
  assert.equal(noExpiry.status, 401);
  assert.match(String(noExpiry.error), /no expiry \(exp\)/);
  const tooLong = await upgradeStatus(running, "alice", await hs256({ sub: "alice", exp: Math.floor(Date.now() / 1000) + 2 * 86_400 }));
  assert.equal(tooLong.status, 401);
  assert.match(String(tooLong.error), /server\.auth\.max_token_age_seconds/);
  assert.equal(
    (await upgradeStatus(running, "alice", await hs256({ sub: "alice", exp: Math.floor(Date.now() / 1000) + 3600 }))).status,
    101,
  );

  // The admin token lists everyone and opens any user id.
  assert.deepEqual((await getJson(running, "/sessions", { authorization: `Bearer ${ADMIN}` })).body, {
    active_sessions: ["alice", "bob"],
    total_sessions: 2,
  });
  assert.equal((await getJson(running, "/sessions/bob", { authorization: `Bearer ${ADMIN}` })).status, 200);
  assert.equal((await upgradeStatus(running, "bob", ADMIN)).status, 101);
  await aliceClient.close();
  await bobClient.close();
});

test("jwt (RS256 public key, PEM): verified with the key; an HS256 token 'signed' with the public key is refused", async () => {
  const { publicKey, privateKey } = await generateKeyPair("RS256", { extractable: true });
  const pem = await exportSPKI(publicKey);
  const running = await start({ mode: "jwt", jwt: { public_key: pem, issuer: "https://issuer.test", audience: "mcp-agent" } });
  const sign = (claims: Record<string, unknown>, key: CryptoKey = privateKey) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: "RS256" })
      .setIssuer("https://issuer.test")
      .setAudience("mcp-agent")
      .setExpirationTime("5m")
      .sign(key);
  assert.equal((await upgradeStatus(running, "carol", await sign({ sub: "carol" }))).status, 101);
  // The classic algorithm confusion: the PEM text used as an HMAC secret.
  const confused = await hs256({ sub: "carol", iss: "https://issuer.test", aud: "mcp-agent" }, pem);
  assert.match(String((await upgradeStatus(running, "carol", confused)).error), /algorithm/);
  // Issuer and audience are checked.
  const wrongAudience = await new SignJWT({ sub: "carol" })
    .setProtectedHeader({ alg: "RS256" })
    .setIssuer("https://issuer.test")
    .setAudience("someone-else")
    .sign(privateKey);
  assert.match(String((await upgradeStatus(running, "carol", wrongAudience)).error), /aud/);
});

test("jwt (ES256, JWKS URL): keys are fetched from the issuer's key set", async () => {
  const { publicKey, privateKey } = await generateKeyPair("ES256");
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256", use: "sig" };
  const jwks = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((resolve) => jwks.listen(0, "127.0.0.1", resolve));
  closers.push(() => new Promise((resolve) => jwks.close(() => resolve())));
  const running = await start({
    mode: "jwt",
    jwt: { jwks_url: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/.well-known/jwks.json` },
  });
  const token = await new SignJWT({ sub: "dave" }).setProtectedHeader({ alg: "ES256", kid: "k1" }).setExpirationTime("5m").sign(privateKey);
  assert.equal((await upgradeStatus(running, "dave", token)).status, 101);
  assert.equal((await upgradeStatus(running, "erin", token)).status, 403);
  const { privateKey: stranger } = await generateKeyPair("ES256");
  const foreign = await new SignJWT({ sub: "dave" }).setProtectedHeader({ alg: "ES256", kid: "k1" }).sign(stranger);
  assert.equal((await upgradeStatus(running, "dave", foreign)).status, 401);
});

test("users file: hashed per-user tokens made by `npm run hash-token`; a token opens only its own user id", async () => {
  // The CLI, as an operator runs it: a line for the file, the token on stderr.
  const run = await promisify(execFile)(
    process.execPath,
    ["--import", "tsx", path.join(ROOT, "lib/auth/hash-token.ts"), "--user", "frank"],
    {
      cwd: ROOT,
    },
  );
  const frankToken = /shown once\): (\S+)/.exec(run.stderr)?.[1] ?? "";
  assert.ok(frankToken.length >= 24, run.stderr);
  assert.match(run.stdout, /^frank: "\$scrypt\$ln=14,r=8,p=1\$[^"]+"\n$/);
  const graceToken = "grace-token-0123456789";
  const file = `${run.stdout}grace: "${await hashToken(graceToken)}"\n`;
  const running = await start({ mode: "users", users_file: "users.yaml", admin_token: ADMIN }, { "users.yaml": file });

  assert.equal((await upgradeStatus(running, "frank", frankToken)).status, 101);
  // Again, from the verified cache, still right.
  assert.equal((await upgradeStatus(running, "frank", frankToken)).status, 101);
  // Frank's token is not Grace's; "frank:<token>" names Frank, so on /ws/grace it is a 403.
  assert.equal((await upgradeStatus(running, "grace", frankToken)).status, 401);
  assert.equal((await upgradeStatus(running, "grace", `frank:${frankToken}`)).status, 403);
  assert.equal((await upgradeStatus(running, "grace", graceToken)).status, 101);
  // A user id that is not in the file has no token at all.
  assert.equal((await upgradeStatus(running, "mallory", graceToken)).status, 401);
  // /sessions with `curl -u grace:<token>` (Basic): only Grace's own.
  const client = await connect(running.wsUrl("grace", `?token=${graceToken}`));
  await client.next();
  const basic = `Basic ${Buffer.from(`grace:${graceToken}`).toString("base64")}`;
  assert.deepEqual((await getJson(running, "/sessions", { authorization: basic })).body, { active_sessions: ["grace"], total_sessions: 1 });
  assert.equal((await getJson(running, "/sessions/grace", { authorization: `Bearer ${graceToken}` })).status, 200);
  assert.equal((await getJson(running, "/sessions/frank", { authorization: `Bearer ${graceToken}` })).status, 401);
  await client.close();

  // A flood of wrong tokens for a real user: every one refused (401, or past the failed-check
  // limit 429), and the right token still works after (it was verified before).
  const flood = await Promise.all(Array.from({ length: 100 }, (_, n) => upgradeStatus(running, "grace", `wrong-token-${n}-0000000000`)));
  assert.ok(
    flood.every((answer) => [401, 429, 503].includes(answer.status)),
    JSON.stringify(flood.map((answer) => answer.status)),
  );
  assert.ok(
    flood.some((answer) => answer.status === 429),
    "failed checks are rate-limited",
  );
  assert.equal((await upgradeStatus(running, "grace", graceToken)).status, 101);

  // A user added to the file is let in without a restart; a file broken meanwhile keeps the last good one.
  const henryToken = "henry-token-0123456789";
  const usersPath = path.join(running.configDir, "users.yaml");
  writeFileSync(usersPath, `${file}henry: "${await hashToken(henryToken)}"\n`);
  utimesSync(usersPath, new Date(), new Date(Date.now() + 5000));
  await until(async () => (await upgradeStatus(running, "henry", henryToken)).status === 101, "the new user to be accepted", 10000);
  writeFileSync(usersPath, "henry: [not, a, hash]\n");
  utimesSync(usersPath, new Date(), new Date(Date.now() + 10000));
  // The file is looked at when a token is checked (at most every 2 s).
  await until(
    async () =>
      (await upgradeStatus(running, "henry", henryToken)).status === 101 &&
      readLog(running.logPath).some((line) => line.event === "users_file_invalid"),
    "the broken file to be reported, and the last good one kept",
    10000,
  );
});

test("server.auth mistakes stop the start with the key to fix", async () => {
  const parse = (text: string) => parseConfig({ file: "c.yaml", text }, undefined, {}, "/tmp");
  assert.throws(
    () => parse("server: {auth: {mode: jwt}}"),
    (error: unknown) => error instanceof ConfigError && /server\.auth\.jwt\.secret/.test(error.message),
  );
  assert.throws(() => parse("server: {auth: {mode: users}}"), /server\.auth\.users_file/);
  assert.throws(() => parse("server: {auth: {mode: sso}}"), /server\.auth\.mode/);
  await assert.rejects(start({ mode: "jwt", jwt: { secret: "short" } }), /at least 32 characters/);
  await assert.rejects(start({ mode: "jwt", jwt: { public_key: "not a pem" } }), /server\.auth\.jwt\.public_key/);
  await assert.rejects(
    start({ mode: "users", users_file: "users.yaml" }, { "users.yaml": 'alice: "plain-text-token"\n' }),
    /user "alice": not a scrypt hash/,
  );
  // The admin token is a secret like the others: redacted from logs.
  assert.ok(parse(`server: {auth: {admin_token: ${ADMIN}}}`).secretValues.includes(ADMIN));
});

test("the CLI takes a per-user token as before: its own user id chats, another one is refused with the reason (exit 3)", async () => {
  const running = await start({ mode: "jwt", jwt: { secret: HS_SECRET } });
  const token = await hs256({ sub: "gina" });
  const cli = (user: string) =>
    promisify(execFile)(
      process.execPath,
      ["--import", "tsx", path.join(ROOT, "client.ts"), "--url", running.url, "--user", user, "-m", "hi"],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH, MCP_AGENT_AUTH_TOKEN: token },
      },
    ).then(
      (done) => ({ code: 0, stdout: done.stdout, stderr: done.stderr }),
      (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
    );
  const own = await cli("gina");
  assert.equal(own.code, 0, own.stderr);
  assert.equal(own.stdout.trim(), "echo: hi");
  const other = await cli("hank");
  assert.equal(other.code, 3);
  assert.match(other.stderr, /HTTP 403.*another user id/);
  assert.ok(!other.stderr.includes(token), "the token is never echoed");
});
