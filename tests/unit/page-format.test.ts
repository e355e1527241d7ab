// The formatting the page and the CLI share (page/format.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { clip, firstLine, formatArguments, formatBytes, formatMs, progressAmount, showArguments, waitText } from "../../page/format.js";
import { formatSize } from "../../client/files.ts";
import { formatArguments as cliArguments } from "../../client/display.ts";

test("sizes: bytes, then KiB/MiB/GiB with one decimal below 10; the CLI uses the same function", () => {
  assert.deepEqual([0, 1023, 1024, 1536, 10 * 1024, 5 * 1024 * 1024, 3 * 1024 ** 3, 2048 * 1024 ** 3].map(formatBytes), [
    "0 B",
    "1023 B",
    "1.0 KiB",
    "1.5 KiB",
    "10 KiB",
    "5.0 MiB",
    "3.0 GiB",
    "2048 GiB",
  ]);
  assert.equal(formatSize, formatBytes);
  assert.equal(cliArguments, formatArguments);
});

test("durations: milliseconds below a second, then seconds", () => {
  assert.deepEqual([0, 84, 999, 1000, 2100, 9999, 10000, 61500].map(formatMs), [
    "0 ms",
    "84 ms",
    "999 ms",
    "1.0 s",
    "2.1 s",
    "10.0 s",
    "10 s",
    "62 s",
  ]);
});

test("tool arguments: one clipped line for summaries, the raw text or indented JSON for the card", () => {
  assert.equal(formatArguments({ path: "a.txt", text: "two\nlines" }), '{"path":"a.txt","text":"two\\nlines"}');
  assert.equal(formatArguments("raw  text\n with   spaces"), "raw text with spaces");
  assert.equal(formatArguments({ long: "x".repeat(200) }).length, 120);
  assert.ok(formatArguments({ long: "x".repeat(200) }).endsWith("…"));
  assert.equal(formatArguments(undefined), "");
  assert.equal(showArguments("not json {"), "not json {");
  assert.equal(showArguments({ a: 1 }), '{"a":1}');
  assert.equal(showArguments({ a: 1 }, 2), '{\n  "a": 1\n}');
  assert.equal(showArguments(undefined), "");
});

test("first lines, clipping, waits and progress", () => {
  assert.equal(firstLine("one\ntwo"), "one");
  assert.equal(firstLine("abcdef", 4), "abc…");
  assert.equal(clip("abc", 3), "abc");
  assert.equal(waitText(120000), "120 s");
  assert.equal(waitText(1499), "1 s");
  assert.equal(progressAmount(3, 5), "3/5 (60%)");
  assert.equal(progressAmount(7, 5), "7/5 (100%)", "past the total the bar is full");
  assert.equal(progressAmount(3, undefined), "");
  assert.equal(progressAmount(3, 0), "");
});
