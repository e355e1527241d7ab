// When a crashed MCP server starts again (lib/mcp/restarts.ts): pure decisions over the restarts
// so far, the cap and the clock.
import { test } from "node:test";
import assert from "node:assert/strict";
import { afterFailedStart, backoffMs, nextStartAfterCrash, restartDecision, type RestartDecision } from "../../lib/mcp/restarts.ts";

const NOW = 1_700_000_000_000;

test("the backoff doubles from 1 s: 1 s, 2 s, 4 s, 8 s", () => {
  assert.deepEqual([1, 2, 3, 4].map(backoffMs), [1000, 2000, 4000, 8000]);
});

test("a first crash may restart at once; a crash after a restart waits for the backoff", () => {
  assert.equal(nextStartAfterCrash(0, NOW), NOW);
  assert.equal(nextStartAfterCrash(1, NOW), NOW + 1000);
  assert.equal(nextStartAfterCrash(2, NOW), NOW + 2000);
  assert.equal(nextStartAfterCrash(3, NOW), NOW + 4000);
});

test("a first start that fails is left failed; a restart that fails is one more crash, until the cap", () => {
  assert.deepEqual(afterFailedStart(0, 3, NOW), { state: "failed" });
  assert.deepEqual(afterFailedStart(1, 3, NOW), { state: "exited", nextStartAt: NOW + 1000 });
  assert.deepEqual(afterFailedStart(2, 3, NOW), { state: "exited", nextStartAt: NOW + 2000 });
  assert.deepEqual(afterFailedStart(3, 3, NOW), { state: "failed" });
});

test("at the cap it gives up, with the error the user reads (naming limits.mcp_max_restarts)", () => {
  assert.deepEqual(restartDecision({ restarts: 3, nextStartAt: NOW }, 3, NOW, 60_000), {
    kind: "give_up",
    error: "the server crashed and was restarted 3 times (limits.mcp_max_restarts); it is not started again",
  });
  assert.deepEqual(restartDecision({ restarts: 1, nextStartAt: NOW - 5000 }, 1, NOW, 0), {
    kind: "give_up",
    error: "the server crashed and was restarted 1 time (limits.mcp_max_restarts); it is not started again",
  });
  // mcp_max_restarts: 0 — a crash is final.
  assert.equal(restartDecision({ restarts: 0, nextStartAt: NOW }, 0, NOW, 60_000).kind, "give_up");
});

test("below the cap: now when the backoff is over, a wait when it ends within the wait allowed, later otherwise", () => {
  assert.deepEqual(restartDecision({ restarts: 0, nextStartAt: NOW }, 3, NOW, 0), { kind: "now" });
  assert.deepEqual(restartDecision({ restarts: 1, nextStartAt: NOW - 1 }, 3, NOW, 0), { kind: "now" });
  assert.deepEqual(restartDecision({ restarts: 1, nextStartAt: NOW + 1000 }, 3, NOW, 60_000), { kind: "wait", ms: 1000 });
  assert.deepEqual(restartDecision({ restarts: 2, nextStartAt: NOW + 2000 }, 3, NOW, 1000), { kind: "later", ms: 2000 });
  assert.deepEqual(restartDecision({ restarts: 2, nextStartAt: NOW + 2000 }, 3, NOW, 0), { kind: "later", ms: 2000 });
});

test("a crash loop, driven by the policy alone, restarts exactly limits.mcp_max_restarts times, waiting 0 s, 1 s, 2 s", () => {
  for (const maxRestarts of [0, 1, 3, 5]) {
    let now = NOW;
    let restarts = 0;
    const waits: number[] = [];
    let decision: RestartDecision;
    // Start, crash at once, ask again — with a caller that will wait as long as it takes.
    for (;;) {
      const crash = { restarts, nextStartAt: nextStartAfterCrash(restarts, now) };
      decision = restartDecision(crash, maxRestarts, now, Number.POSITIVE_INFINITY);
      if (decision.kind === "give_up") break;
      const waited = decision.kind === "now" ? 0 : decision.ms;
      waits.push(waited);
      now += waited;
      restarts++;
      assert.ok(restarts <= maxRestarts, "never past the cap");
    }
    assert.equal(restarts, maxRestarts);
    assert.deepEqual(waits, [0, 1000, 2000, 4000, 8000].slice(0, maxRestarts));
    assert.match(decision.error, new RegExp(`restarted ${maxRestarts} time`));
  }
});
