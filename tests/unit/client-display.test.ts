// client/display.ts: the terminal's clock, one-line arguments, and when colour is used.
import { test } from "node:test";
import assert from "node:assert/strict";
import { clock, colourWanted, formatArguments } from "../../client/display.ts";

test("display helpers: clock, one-line arguments, colour only on a terminal without NO_COLOR", () => {
  assert.equal(clock(new Date(2024, 0, 1, 9, 5, 7)), "[09:05:07]");
  assert.equal(formatArguments({ path: "a.txt" }), '{"path":"a.txt"}');
  assert.equal(formatArguments("raw\n text"), "raw text");
  assert.equal(formatArguments({ long: "x".repeat(500) }).length, 120);
  assert.equal(colourWanted({ isTTY: true }, {}), true);
  assert.equal(colourWanted({ isTTY: true }, { NO_COLOR: "1" }), false);
  assert.equal(colourWanted({ isTTY: false }, {}), false);
});
