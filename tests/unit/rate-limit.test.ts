// lib/session/rate-limit.ts: a token bucket as pure functions of now.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fullBucket, takeToken } from "../../lib/session/rate-limit.ts";

test("rate-limit.ts: a token bucket as pure functions of now", () => {
  const limit = { perMinute: 6, burst: 2 };
  const t0 = 1_000_000;
  let bucket = fullBucket(limit, t0);
  assert.deepEqual(bucket, { tokens: 2, updatedAt: t0 });
  let decision = takeToken(bucket, limit, t0);
  assert.equal(decision.allowed, true);
  decision = takeToken(decision.bucket, limit, t0);
  assert.equal(decision.allowed, true);
  const refused = takeToken(decision.bucket, limit, t0);
  assert.equal(refused.allowed, false);
  assert.equal(!refused.allowed && refused.retryAfterMs, 10_000, "one token per 10 s");
  // Half the wait: still refused, and the answer says the rest.
  const half = takeToken(refused.bucket, limit, t0 + 5_000);
  assert.equal(!half.allowed && half.retryAfterMs, 5_000);
  // After the wait: one message, not two.
  bucket = half.bucket;
  decision = takeToken(bucket, limit, t0 + 10_000);
  assert.equal(decision.allowed, true);
  assert.equal(takeToken(decision.bucket, limit, t0 + 10_000).allowed, false);
  // A long quiet spell refills up to the burst only.
  const rested = takeToken(decision.bucket, limit, t0 + 3_600_000);
  assert.equal(rested.allowed, true);
  assert.equal(rested.bucket.tokens, 1);
  // A clock that goes back adds nothing.
  const back = takeToken({ tokens: 0, updatedAt: t0 }, limit, t0 - 60_000);
  assert.equal(back.allowed, false);
});
