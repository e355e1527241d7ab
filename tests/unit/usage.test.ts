// lib/model/usage.ts without a server: the UTC day, and the daily token quota's decision.
import { test } from "node:test";
import assert from "node:assert/strict";
import { nextUtcMidnight, quotaDecision, utcDay } from "../../lib/model/usage.ts";

test("the refusal says when the quota resets (midnight UTC)", () => {
  const now = Date.UTC(2026, 10, 29, 21, 30);
  assert.equal(nextUtcMidnight(now), Date.UTC(2026, 10, 30));
  assert.equal(utcDay(now), "2026-11-29");
  assert.deepEqual(quotaDecision(99, 100, now), { allowed: true });
  assert.deepEqual(quotaDecision(5, undefined, now), { allowed: true });
  const refused = quotaDecision(100, 100, now);
  assert.equal(refused.allowed, false);
  assert.equal(
    !refused.allowed && refused.error,
    "Daily token quota reached: 100 of 100 tokens used today (limits.tokens_per_day). It resets at midnight UTC (2026-11-30T00:00:00Z), in 2 h 30 min",
  );
});
