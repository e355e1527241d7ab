// lib/fetch/robots-match.ts and the robots.txt verdict of lib/fetch/fetch-tool.ts: linear matching,
// so a crafted rule costs microseconds, and a bound on the work of one verdict.
import { test } from "node:test";
import assert from "node:assert/strict";
import { robotsVerdict } from "../../lib/fetch/fetch-tool.ts";
import { RobotsTooComplex, robotsPatternMatches } from "../../lib/fetch/robots-match.ts";

/** A rule that makes a backtracking matcher (`.*a.*a…b`) take exponential time on a path of a's. */
const CRAFTED_RULE = `/${"*a".repeat(40)}*b`;
const LONG_PATH = `/${"a".repeat(12_000)}`;

test("robots patterns: *, $ and prefixes as RFC 9309 says", () => {
  const cases: [string, string, boolean][] = [
    ["/fish", "/fish.html", true],
    ["/fish", "/Fish", false],
    ["/fish*", "/fishheads/yummy", true],
    ["/*.php", "/folder/filename.php?x=1", true],
    ["/*.php$", "/filename.php", true],
    ["/*.php$", "/filename.php?x", false],
    ["/fish*.php", "/fishheads/catfish.php?x", true],
    ["/fish*.php", "/Fish.PHP", false],
    ["/a$b", "/a$b/c", true],
    ["*", "/", true],
    ["/$", "/", true],
    ["/$", "/a", false],
    ["/**a**$", "/xxa", true],
    ["/*aab", "/aaab", true],
    ["/*abab$", "/abaabab", true],
  ];
  for (const [pattern, path, expected] of cases) {
    assert.equal(robotsPatternMatches(pattern, path, { steps: 1e6 }), expected, `${pattern} on ${path}`);
  }
});

test("a crafted robots.txt rule against a long path is decided at once", () => {
  const started = performance.now();
  const verdict = robotsVerdict(`User-agent: *\nDisallow: ${CRAFTED_RULE}\nDisallow: /private`, "TestBot/1.0", LONG_PATH);
  const elapsed = performance.now() - started;
  assert.equal(verdict.allowed, true);
  assert.ok(elapsed < 100, `${elapsed.toFixed(1)} ms`);
  // The same rule does match where it should.
  assert.equal(robotsVerdict(`User-agent: *\nDisallow: ${CRAFTED_RULE}`, "TestBot/1.0", `${LONG_PATH}b`).allowed, false);
});

test("many rules times a long path: the verdict's work is bounded, and beyond it the fetch is refused", () => {
  const rules = Array.from({ length: 20_000 }, (_, n) => `Disallow: *a*${n}x`).join("\n");
  const started = performance.now();
  assert.throws(() => robotsVerdict(`User-agent: *\n${rules}`, "TestBot/1.0", LONG_PATH), RobotsTooComplex);
  assert.ok(performance.now() - started < 1000);
});
