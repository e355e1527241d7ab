// One refresh in flight per user and server across a cluster: two instances (two Redis stores,
// as two servers have) find the same user's tokens about to expire at once; the refresh token is
// presented once, and both end up with the same new tokens. Real redis-server, a real OAuth server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { auth } from "@modelcontextprotocol/sdk/client/auth.js";
import { freePorts, REDIS_CANDIDATES, startRedis, type Child } from "../../deploy/processes.ts";
import { OPERATOR, parsePending, STATE_KIND, UserOAuthProvider, type ProviderOptions } from "../../lib/oauth/provider.ts";
import { SealedRecords } from "../../lib/oauth/records.ts";
import { Vault } from "../../lib/oauth/vault.ts";
import { RedisStore } from "../../lib/store/redis-store.ts";
import type { Logger } from "../../lib/log.ts";
import { externalSkip, findExecutable } from "../helpers/external.ts";
import { startOAuthMcpServer, type OAuthMcpServer } from "../helpers/oauth-mcp-server.ts";

const REDIS_SERVER = findExecutable("REDIS_SERVER_PATH", REDIS_CANDIDATES);
const skip = externalSkip("redis-server", REDIS_SERVER, "redis-server");

let redis: (Child & { url: string }) | undefined;
let redisDir = "";
let remote: OAuthMcpServer;
const clients: Redis[] = [];

const quiet: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  filePath: undefined,
  close: () => Promise.resolve(),
};

before(async () => {
  if (skip) return;
  redisDir = mkdtempSync(path.join(tmpdir(), "redis-oauth-"));
  const [port = 0] = await freePorts(1);
  redis = await startRedis({ bin: REDIS_SERVER ?? "redis-server", port, dir: redisDir });
  // Tokens that expire within the refresh margin: each instance wants to refresh them.
  remote = await startOAuthMcpServer({ expiresInSeconds: 30 });
});
after(async () => {
  for (const client of clients) client.disconnect();
  await remote?.close();
  await redis?.stop();
  if (redisDir) rmSync(redisDir, { recursive: true, force: true });
});

/** One instance's provider for user "alice" and server "protected": its own Redis connection, the cluster's key. */
function instance(key: Buffer, extra: Partial<ProviderOptions> = {}): { provider: UserOAuthProvider; records: SealedRecords } {
  const client = new Redis(redis?.url ?? "", { lazyConnect: false, maxRetriesPerRequest: 1 });
  clients.push(client);
  const records = new SealedRecords(new RedisStore(client), () => new Vault(key));
  const provider = new UserOAuthProvider({
    records,
    userId: "alice",
    server: "protected",
    serverUrl: remote.url,
    settings: { scopes: [], grant: "authorization_code" },
    redirectUrl: "http://127.0.0.1:1/oauth/callback",
    clientMetadataUrl: undefined,
    clientName: "test",
    flowMs: 60_000,
    log: quiet,
    onAuthorizationUrl: (url) => void signIn(url),
    // An instance of its own: only Redis can keep the two from refreshing twice.
    inflight: new Map(),
    ...extra,
  });
  return { provider, records };
}

let signedIn: Promise<URLSearchParams> | undefined;
let resolveSignIn: (query: URLSearchParams) => void = () => undefined;
async function signIn(url: URL): Promise<void> {
  const answer = await fetch(url, { redirect: "manual" });
  resolveSignIn(new URL(answer.headers.get("location") ?? "").searchParams);
}

test("two instances refreshing the same user's tokens at once present the refresh token once", { skip }, async () => {
  const key = randomBytes(32);
  // Signed in once, through the first instance.
  signedIn = new Promise((resolve) => (resolveSignIn = resolve));
  const first = instance(key);
  assert.equal(await auth(first.provider, { serverUrl: remote.url, fetchFn: first.provider.fetch }), "REDIRECT");
  const query = await signedIn;
  const pending = parsePending(await first.records.take(OPERATOR, STATE_KIND, query.get("state") ?? ""));
  assert.ok(pending, "the state was recorded for the user");
  const completing = instance(key, { verifier: pending.verifier });
  assert.equal(
    await auth(completing.provider, {
      serverUrl: remote.url,
      authorizationCode: query.get("code") ?? "",
      fetchFn: completing.provider.fetch,
    }),
    "AUTHORIZED",
  );

  // Two instances, each with its own connection to Redis, need the tokens at the same moment.
  const a = instance(key);
  const b = instance(key);
  const before = remote.refreshes;
  const [tokensA, tokensB] = await Promise.all([a.provider.tokens(), b.provider.tokens()]);
  assert.equal(remote.reusedRefreshTokens, 0, "no refresh token was presented twice");
  assert.equal(remote.refreshes, before + 1, "one refresh for both instances");
  assert.ok(tokensA?.access_token);
  assert.equal(tokensA?.access_token, tokensB?.access_token);
  assert.equal(tokensA?.access_token, remote.tokensIssued.at(-1));
});
