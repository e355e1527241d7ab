// Nobody locked out: a full server puts an idle session to sleep rather than refuse a newcomer; new
// sessions are limited per address and per /24, behind a trusted proxy per forwarded client; sockets
// per address are capped; in users mode a flood of wrong tokens never makes a correct one "not
// valid". Real sockets from many loopback addresses (127.0.x.y, bound with localAddress).
import { after, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { echoResponder, startModelServer } from "../helpers/model-server.ts";
import { ask, baseConfig, makeConfigDir, startServer, TestClient, type Frame, type RunningServer } from "../helpers/harness.ts";
import { hashToken } from "../../lib/auth/token-hash.ts";

const model = await startModelServer({ responder: echoResponder });
const servers: RunningServer[] = [];
after(async () => {
  for (const server of servers) await server.close();
  await model.close();
});

async function start(extra: Record<string, unknown>, files: Record<string, string> = {}): Promise<RunningServer> {
  const configDir = makeConfigDir({
    config: baseConfig(model.baseUrl, {}, { session: { store: "sqlite" }, ...extra }),
    secrets: { openai: { api_key: "sk-lockouts" } },
  });
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(configDir, name), text);
  const running = await startServer({ configDir });
  servers.push(running);
  return running;
}

/** A socket from `localAddress`: its welcome frame, or how it was closed. */
async function open(
  running: RunningServer,
  userId: string,
  localAddress: string,
  headers: Record<string, string> = {},
): Promise<{ client: TestClient; welcome?: Frame; closed?: { code: number; reason: string } }> {
  const client = new TestClient(running.wsUrl(userId), { localAddress, headers });
  const welcome = new Promise<Frame>((resolve) => client.ws.once("message", (data) => resolve(JSON.parse(data.toString()) as Frame)));
  const outcome = await Promise.race([welcome.then((frame) => ({ welcome: frame })), client.closed.then((closed) => ({ closed }))]);
  if ("welcome" in outcome) await client.next(); // the welcome, read
  return { client, ...outcome };
}

async function chatOnce(running: RunningServer, userId: string, localAddress: string): Promise<Frame> {
  const { client, welcome, closed } = await open(running, userId, localAddress);
  assert.ok(welcome, `${userId} from ${localAddress} got in: ${JSON.stringify(closed)}`);
  const answer = await ask(client, `hi from ${userId}`);
  await client.close();
  return { ...welcome, answer };
}

async function health(running: RunningServer): Promise<number> {
  return (await fetch(`${running.url}/health`)).status;
}

test("a full server puts the least recently active idle session to sleep for a newcomer; it comes back with its history", async () => {
  const running = await start({ limits: { max_sessions: 2 } });
  const first = await chatOnce(running, "amy", "127.0.0.1");
  await chatOnce(running, "ben", "127.0.0.1");
  // Full (two sessions that chatted, no socket): the newcomer gets in and Amy, the least recent, sleeps.
  assert.equal(((await chatOnce(running, "cid", "127.0.0.1")).answer as Frame).message, "echo: hi from cid");
  assert.equal(running.server.sessions.get("amy"), undefined);
  assert.ok(running.server.sessions.get("ben"));
  // Amy comes back: same session, her history read from the store (and Ben sleeps for her).
  const back = await open(running, "amy", "127.0.0.1");
  assert.equal(back.welcome?.session_id, first.session_id);
  back.client.send({ type: "history" });
  const history = await back.client.nextMatching((frame) => frame.type === "history");
  assert.ok(JSON.stringify(history.items).includes("hi from amy"), JSON.stringify(history));
  assert.equal(running.server.sessions.get("ben"), undefined);
  // When every session has a socket, there is no one to put to sleep: the refusal names the key.
  const cid = await open(running, "cid", "127.0.0.1");
  const dan = await open(running, "dan", "127.0.0.1");
  assert.equal(dan.closed?.code, 1013);
  assert.match(String(dan.closed?.reason), /limits\.max_sessions/);
  await Promise.all([back.client.close(), cid.client.close()]);
});

test("a lockout attempt from many addresses of one /24 is held by the prefix limit, and newcomers and returning users still get in", async () => {
  const running = await start({
    limits: {
      max_sessions: 5,
      new_sessions_per_minute: 1,
      new_session_burst: 2,
      new_sessions_per_prefix_per_minute: 1,
      new_session_prefix_burst: 6,
    },
  });
  const victim = await chatOnce(running, "victim", "127.0.1.1");
  // The attacker holds 30 addresses of 127.0.0.0/24 and makes (or tries) two sessions from each, each chatting once.
  const outcomes: string[] = [];
  for (let host = 10; host < 40; host++) {
    for (const n of [0, 1]) {
      const { client, welcome, closed } = await open(running, `bot-${host}-${n}`, `127.0.0.${host}`);
      if (welcome) {
        await ask(client, "hold a slot");
        await client.close();
        outcomes.push("in");
      } else outcomes.push(`closed ${closed?.code} ${closed?.reason}`);
    }
  }
  assert.equal(outcomes.filter((outcome) => outcome === "in").length, 6, "the /24's burst");
  const refusals = outcomes.filter((outcome) => outcome !== "in");
  assert.ok(
    refusals.every((outcome) => /^closed 1013 .*127\.0\.0\.0\/24 \(limits\.new_session_prefix_burst\)/.test(outcome)),
    refusals[0],
  );
  assert.equal(await health(running), 200);
  // The server is full of the attacker's idle sessions: the victim and a newcomer from elsewhere still get in.
  const back = await open(running, "victim", "127.0.1.1");
  assert.equal(back.welcome?.session_id, victim.session_id);
  assert.equal((await ask(back.client, "still here")).message, "echo: still here");
  assert.equal(((await chatOnce(running, "newcomer", "127.0.2.1")).answer as Frame).message, "echo: hi from newcomer");
  await back.client.close();
});

test("the new-session burst names limits.new_session_burst; sockets per address are capped, naming limits.max_sockets_per_address", async () => {
  const running = await start({ limits: { new_sessions_per_minute: 1, new_session_burst: 2, max_sockets_per_address: 3 } });
  await open(running, "one", "127.0.3.1").then(({ client }) => client.close());
  await open(running, "two", "127.0.3.1").then(({ client }) => client.close());
  const third = await open(running, "three", "127.0.3.1");
  assert.equal(third.closed?.code, 1013);
  assert.match(String(third.closed?.reason), /limits\.new_session_burst/);

  const held = await Promise.all(["one", "two", "one"].map((user) => open(running, user, "127.0.3.1")));
  assert.ok(held.every((socket) => socket.welcome));
  const fourth = await open(running, "two", "127.0.3.1");
  assert.equal(fourth.closed?.code, 1013);
  assert.match(String(fourth.closed?.reason), /limits\.max_sockets_per_address/);
  const elsewhere = await open(running, "two", "127.0.3.2");
  assert.ok(elsewhere.welcome, "another address is not held back");
  await Promise.all([...held, elsewhere].map((socket) => socket.client.close()));
});

test("behind a proxy in server.trusted_proxies each client is its X-Forwarded-For address; from any other peer the header is ignored", async () => {
  const running = await start({
    server: { trusted_proxies: ["127.0.4.1", "10.0.0.0/8"] },
    limits: { new_sessions_per_minute: 1, new_session_burst: 1 },
  });
  const viaProxy = (user: string, chain: string) => open(running, user, "127.0.4.1", { "x-forwarded-for": chain });
  // Many people arriving at once through the proxy: each is limited on their own.
  for (const n of [1, 2, 3, 4, 5]) assert.ok((await viaProxy(`p${n}`, `198.51.${n}.7`)).welcome, `person ${n}`);
  const again = await viaProxy("p6", "198.51.1.7");
  assert.match(String(again.closed?.reason), /limits\.new_session_burst/, "the same person twice is");
  // Hops the client made up before a trusted proxy do not count: the last untrusted hop is the client.
  assert.ok((await viaProxy("p7", "198.51.1.7, 203.0.113.9, 10.1.2.3")).welcome);
  const forged = await viaProxy("p8", "198.51.99.1, 203.0.113.9");
  assert.match(String(forged.closed?.reason), /limits\.new_session_burst/);
  // Not a trusted peer: its X-Forwarded-For is ignored.
  assert.ok((await open(running, "q1", "127.0.4.2", { "x-forwarded-for": "198.51.50.1" })).welcome);
  const spoof = await open(running, "q2", "127.0.4.2", { "x-forwarded-for": "198.51.50.2" });
  assert.match(String(spoof.closed?.reason), /limits\.new_session_burst/);
  for (const socket of [again, forged, spoof]) await socket.client.close();
});

/** GET /sessions/<user> with a token, from `localAddress`: the status, Retry-After and body. */
function sessionsAs(
  running: RunningServer,
  userId: string,
  token: string,
  localAddress: string,
): Promise<{ status: number; retryAfter: string | undefined; body: Record<string, unknown> }> {
  const url = new URL(running.url);
  return new Promise((resolve, reject) => {
    const req = http.get(
      {
        host: url.hostname,
        port: url.port,
        path: `/sessions/${userId}`,
        localAddress,
        agent: false,
        headers: { authorization: `Bearer ${token}` },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            retryAfter: res.headers["retry-after"],
            body: JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>,
          }),
        );
      },
    );
    req.on("error", reject);
  });
}

test("users mode under a flood of wrong tokens: correct tokens work or get 429/503 with Retry-After, never 'not valid'", async () => {
  const tokens = { alice: "alice-token-0123456789", bob: "bob-token-0123456789", carol: "carol-token-0123456789" };
  const file = (await Promise.all(Object.entries(tokens).map(async ([user, token]) => `${user}: "${await hashToken(token)}"`))).join("\n");
  const running = await start(
    { server: { auth: { mode: "users", users_file: "users.yaml", failed_check_burst: 10, failed_checks_per_minute: 6 } } },
    { "users.yaml": `${file}\n` },
  );
  // Bob and Carol connect for the first time while 40 addresses send 5 wrong tokens each, for
  // user ids that do not exist: those cost a real scrypt check too, so the check queue fills up.
  const flood = Array.from({ length: 200 }, (_, n) =>
    sessionsAs(running, `ghost${n}`, `wrong-token-${n}-000000`, `127.0.5.${10 + (n % 40)}`),
  );
  const correct = ["bob", "carol", "bob", "carol"].map((user, n) =>
    sessionsAs(running, user, tokens[user as "bob" | "carol"], `127.0.6.${n + 1}`),
  );
  const floodAnswers = await Promise.all(flood);
  const correctAnswers = await Promise.all(correct);
  for (const answer of correctAnswers) {
    assert.ok([200, 404, 429, 503].includes(answer.status), JSON.stringify(answer));
    assert.doesNotMatch(String(answer.body.error ?? ""), /not valid/);
    if (answer.status === 429 || answer.status === 503) assert.ok(Number(answer.retryAfter) > 0, JSON.stringify(answer));
  }
  const busy = floodAnswers.filter((answer) => answer.status === 503);
  assert.ok(busy.length > 0, "unknown user ids wait for scrypt like known ones");
  for (const answer of busy) {
    assert.equal(answer.body.code, "server_busy");
    assert.ok(Number(answer.retryAfter) > 0);
  }
  assert.ok(floodAnswers.every((answer) => [401, 503].includes(answer.status)));
  // Once the flood is over, the correct tokens are accepted.
  for (const user of ["bob", "carol"] as const) assert.notEqual((await sessionsAs(running, user, tokens[user], "127.0.6.9")).status, 401);

  // Failed checks are limited per address: past the burst a 429 naming the keys, with Retry-After.
  const fromOne = [];
  for (let n = 0; n < 12; n++) fromOne.push(await sessionsAs(running, "ghost", `wrong-${n}-0000000000`, "127.0.7.1"));
  assert.deepEqual(
    fromOne.map((answer) => answer.status),
    [...Array<number>(10).fill(401), 429, 429],
  );
  assert.equal(fromOne[10]?.body.code, "rate_limited");
  assert.match(String(fromOne[10]?.body.error), /server\.auth\.failed_check_burst/);
  assert.ok(Number(fromOne[10]?.retryAfter) > 0);
  // ...and per user id: wrong tokens for Alice from 10 addresses, then her own correct one waits too (429, never 401).
  for (let n = 0; n < 10; n++) assert.equal((await sessionsAs(running, "alice", `wrong-${n}-0000000000`, `127.0.8.${n + 1}`)).status, 401);
  const alice = await sessionsAs(running, "alice", tokens.alice, "127.0.8.200");
  assert.equal(alice.status, 429);
  assert.ok(Number(alice.retryAfter) > 0);
  assert.equal(await health(running), 200);
});
