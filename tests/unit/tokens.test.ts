// Token counting of untrusted text is bounded: long unbroken runs (invented tool names, a wall of
// one character) are estimated from their start instead of merged whole by BPE on the main thread.
import { test } from "node:test";
import assert from "node:assert/strict";
import { TokenCounter } from "../../lib/model/tokens.ts";

test("ordinary text is counted exactly; long runs are estimated close to their exact count", () => {
  const counter = new TokenCounter("gpt-4o");
  assert.equal(counter.text("Hello, world! How are you today?"), 9);
  for (const run of ["a".repeat(6000), "ab".repeat(3000), "name_".repeat(1200)]) {
    const estimate = counter.text(`before ${run} after`);
    const exact = counter.text("before ") + counter.text(" after");
    assert.ok(estimate > exact, "the run counts");
    assert.ok(estimate < exact + run.length, "but no more than a token a character");
  }
});

test("a model's hundreds of long invented tool names cost milliseconds, not seconds", () => {
  const counter = new TokenCounter("gpt-4o");
  counter.text("warm up the encoding");
  const started = performance.now();
  for (let n = 0; n < 200; n++) counter.text(`${"n".repeat(7000)}${n}`);
  // Exact BPE took about 240 ms for each of these; the bound leaves room for a busy machine.
  assert.ok(performance.now() - started < 2000, `${(performance.now() - started).toFixed(0)} ms`);
});
