// History pages (lib/store/history.ts historyPage): pure, so a client can page back through a long
// conversation cheaply and a page never grows past its character budget.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { HistoryItem } from "../../lib/protocol.ts";
import { historyPage } from "../../lib/store/history.ts";

const items: HistoryItem[] = Array.from({ length: 10 }, (_, i) =>
  i % 2 === 0
    ? { role: "user", turn_id: `t${i / 2}`, content: `question ${i / 2}`, status: "ok" }
    : { role: "assistant", turn_id: `t${(i - 1) / 2}`, content: `answer ${(i - 1) / 2}` },
);

test("without `before` the newest `limit` items, oldest first, with where they start", () => {
  const page = historyPage(items, undefined, 4, 1_000_000);
  assert.deepEqual(
    page.items.map((item) => ("content" in item ? item.content : "")),
    ["question 3", "answer 3", "question 4", "answer 4"],
  );
  assert.deepEqual([page.start, page.total], [6, 10]);
});

test("`before` as an index or a turn_id pages back; an unknown turn_id gives an empty page", () => {
  assert.deepEqual(historyPage(items, 6, 4, 1_000_000).start, 2);
  const byTurn = historyPage(items, "t3", 2, 1_000_000);
  assert.deepEqual(
    byTurn.items.map((item) => ("content" in item ? item.content : "")),
    ["question 2", "answer 2"],
  );
  assert.deepEqual(historyPage(items, "nope", 4, 1_000_000).items, []);
  assert.deepEqual(historyPage(items, 0, 4, 1_000_000), { items: [], start: 0, total: 10 });
});

test("a page stops at its character budget, but always holds at least one item", () => {
  const lastTwo = JSON.stringify(items[8]).length + JSON.stringify(items[9]).length;
  assert.equal(historyPage(items, undefined, 10, lastTwo).items.length, 2);
  assert.equal(historyPage(items, undefined, 10, 1).items.length, 1);
});

test("an item larger than a whole page is sent cut, with a note naming the key, never whole", () => {
  const huge: HistoryItem[] = [
    { role: "user", turn_id: "t1", content: "hi", status: "ok" },
    { role: "assistant", turn_id: "t1", content: "x".repeat(50_000) },
  ];
  const page = historyPage(huge, undefined, 10, 10_000);
  assert.equal(page.items.length, 2);
  const cut = page.items[1];
  assert.ok(cut?.role === "assistant");
  assert.ok(JSON.stringify(cut).length < 10_000, "the cut item fits the page");
  assert.match(cut.content, /\[cut: 50000 characters, only the first 5000 are shown \(limits\.history_page_chars\)\]$/);
  const call: HistoryItem = {
    role: "tool",
    turn_id: "t2",
    call_id: "c",
    name: "n".repeat(1000),
    server: "s",
    tool: "t",
    arguments: { text: "a".repeat(50_000) },
    ok: true,
    preview: "",
  };
  const [tool] = historyPage([call], undefined, 10, 10_000).items;
  assert.ok(tool?.role === "tool");
  assert.ok(JSON.stringify(tool).length < 10_000);
  assert.equal(tool.name.length, 200);
});
