// The single-instance Coordinator (lib/session/coordinator.ts): a lease that is free, never lost and
// carries no fence, and a cancelled wait that rejects.
import assert from "node:assert/strict";
import { test } from "node:test";
import { LocalCoordinator } from "../../lib/session/coordinator.ts";

test("the local lease is granted at once, never lost, with no fence and no stale history", async () => {
  const coordinator = new LocalCoordinator();
  assert.equal(coordinator.spansInstances, false);
  const lease = await coordinator.acquire("alice", new AbortController().signal);
  assert.equal(lease.fence, undefined);
  assert.equal(lease.historyStale, false);
  assert.equal(lease.lost.aborted, false);
  await lease.release();
  await coordinator.join();
  await coordinator.leave();
});

test("a wait that was already cancelled rejects", async () => {
  const abort = new AbortController();
  abort.abort(new Error("cancelled"));
  await assert.rejects(new LocalCoordinator().acquire("alice", abort.signal), /cancelled/);
});
