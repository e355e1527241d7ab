// The page's conversation state without a browser (page/conversation.js): pending messages,
// replays after a reconnect, history merges and resets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Conversation, groupByTurn, historyOutcome, statusTag, type TurnState } from "../../page/conversation.js";
import type { HistoryItem } from "../../lib/protocol.ts";

function conversation(): Conversation<TurnState> {
  const made: Conversation<TurnState> = new Conversation((input: string) => ({
    id: null,
    clientId: undefined,
    input,
    status: "",
    done: false,
    epoch: made.epoch,
  }));
  return made;
}

/** A message this tab sends: it waits in `pending` until the server acknowledges it. */
function sent(state: Conversation<TurnState>, input: string, clientId: string): TurnState {
  const turn: TurnState = { id: null, clientId, input, status: "queued", done: false, epoch: state.epoch };
  state.pending.push(turn);
  return turn;
}

const queued = (turnId: string, input: string, clientId?: string) =>
  ({ type: "queued", turn_id: turnId, input, position: 0, ...(clientId ? { client_id: clientId } : {}) }) as const;
const started = (turnId: string, input: string, clientId?: string) =>
  ({ type: "turn_start", turn_id: turnId, input, ...(clientId ? { client_id: clientId } : {}) }) as const;
const user = (turnId: string, content: string, status: "running" | "ok" = "ok"): HistoryItem => ({
  role: "user",
  turn_id: turnId,
  content,
  status,
});

test("an acknowledgement takes this tab's own message by its client_id, not the oldest one", () => {
  const state = conversation();
  state.welcome("s1");
  const first = sent(state, "one", "c1");
  const second = sent(state, "two", "c2");
  assert.equal(state.queued(queued("t2", "two", "c2")), second);
  assert.equal(second.id, "t2");
  assert.deepEqual(state.pending, [first]);
  // Another tab's message is a new turn; a second `queued` for a known turn is nothing new.
  const other = state.queued(queued("t3", "from another tab"));
  assert.equal(other?.input, "from another tab");
  assert.equal(other?.clientId, undefined);
  assert.equal(state.queued(queued("t3", "from another tab")), undefined);
  assert.deepEqual([...state.turns.keys()], ["t2", "t3"]);
  // A refusal names the client_id; one that names none takes nothing.
  assert.equal(state.takePending("c1"), first);
  assert.equal(state.takePending(undefined), undefined);
  assert.equal(state.takePending("c1"), undefined);
});

test("turn_start starts a queued turn, shows a turn it did not know, and replays a running one from the start", () => {
  const state = conversation();
  state.welcome("s1");
  const waiting = state.queued(queued("t1", "hello"));
  assert.ok(waiting);
  waiting.status = "queued";
  const start = state.turnStart(started("t1", "hello"));
  assert.deepEqual([start.kind, start.turn === waiting], ["start", true]);
  start.turn.status = "running";

  // This tab's own message may start without a `queued` first.
  const mine = sent(state, "mine", "c9");
  assert.deepEqual(state.turnStart(started("t2", "mine", "c9")), { turn: mine, kind: "new" });
  assert.equal(mine.id, "t2");
  assert.deepEqual(state.pending, []);

  // A reconnect: the server replays the running turn; its reply starts over, in the new epoch.
  state.welcome("s1");
  assert.equal(state.replaying, true);
  const replay = state.turnStart(started("t1", "hello"));
  assert.deepEqual([replay.kind, replay.turn === waiting, replay.turn.epoch, replay.turn.done], ["replay", true, 2, false]);
});

test("Stop applies only to a turn running in this connection's epoch", () => {
  const state = conversation();
  state.welcome("s1");
  const turn = state.turnStart(started("t1", "hello")).turn;
  assert.equal(state.running(), false, "not running before its status says so");
  turn.status = "running";
  assert.equal(state.running(), true);
  state.welcome("s1");
  assert.equal(state.running(), false, "after a reconnect it runs only once replayed");
  state.turnStart(started("t1", "hello"));
  assert.equal(state.running(), true);
});

test("history replaces finished turns, keeps live and queued ones, and names the turns that are gone", () => {
  const state = conversation();
  state.welcome("s1");
  const done = state.queued(queued("t1", "done"));
  const running = state.queued(queued("t2", "running"));
  const waiting = state.queued(queued("t3", "waiting"));
  const vanished = state.queued(queued("t4", "vanished"));
  assert.ok(done && running && waiting && vanished);
  done.status = "ok";
  done.done = true;
  running.status = "running";
  waiting.status = "queued";
  vanished.status = "ok";
  vanished.done = true;
  const pendingTurn = sent(state, "unacknowledged", "c1");
  const built: string[] = [];
  const items = [user("t1", "done"), { role: "assistant", turn_id: "t1", content: "answer" } as const, user("t2", "running", "running")];
  assert.equal(state.historyArrived(items.length), "same");
  assert.equal(state.replaying, false);
  const gone = state.mergeHistory(items, (id, group) => {
    built.push(`${id}:${group.length}`);
    return { id, clientId: undefined, input: historyOutcome(group).input, status: "ok", done: true, epoch: state.epoch };
  });
  assert.deepEqual(built, ["t1:2"], "only the finished turn is drawn again from history");
  assert.deepEqual([...state.turns.keys()], ["t1", "t2", "t3"]);
  assert.notEqual(state.turns.get("t1"), done);
  assert.equal(state.turns.get("t2"), running, "the live turn stays as it is");
  assert.equal(state.turns.get("t3"), waiting, "a queued turn that history does not have yet stays");
  assert.deepEqual(gone, [vanished], "a turn history does not have any more is gone; a redrawn one keeps its id");
  assert.deepEqual(state.pending, [pendingTurn], "unacknowledged messages are not history's business");
});

test("a running turn seen before the reconnect and not replayed is drawn from history", () => {
  const state = conversation();
  state.welcome("s1");
  const turn = state.turnStart(started("t1", "hello")).turn;
  turn.status = "running";
  state.welcome("s1");
  const gone = state.mergeHistory([user("t1", "hello")], (id) => ({
    id,
    clientId: undefined,
    input: "hello",
    status: "ok",
    done: true,
    epoch: state.epoch,
  }));
  assert.deepEqual(gone, []);
  assert.notEqual(state.turns.get("t1"), turn);
  assert.equal(state.turns.get("t1")?.status, "ok");
});

test("a new empty session archives the transcript; a new session with history replaces it", () => {
  const state = conversation();
  state.welcome("s1");
  assert.equal(state.sessionChanged, false, "the first welcome changes nothing");
  const unfinished = state.turnStart(started("t1", "hello")).turn;
  const unsent = sent(state, "late", "c1");
  state.welcome("s2");
  assert.equal(state.sessionChanged, true);
  assert.equal(state.historyArrived(0), "archive");
  assert.equal(state.sessionChanged, false);
  assert.deepEqual(state.archive(), { unfinished: [unfinished], unsent: [unsent] });
  assert.deepEqual([state.turns.size, state.pending.length], [0, 0]);
  state.welcome("s3");
  assert.equal(state.historyArrived(2), "clear-archive");
  state.welcome("s3");
  assert.equal(state.historyArrived(0), "same");
});

test("a reset clears the turns but keeps messages sent after it; this tab's own reset may land while it was away", () => {
  const state = conversation();
  state.welcome("s1");
  state.queued(queued("t1", "old"));
  const after = sent(state, "after the reset", "c1");
  state.resetting = true;
  assert.equal(state.reset("s2"), true, "this tab asked");
  assert.deepEqual([state.turns.size, state.pending, state.resetting, state.sessionId], [0, [after], false, "s2"]);
  assert.equal(state.reset("s3"), false, "another tab's reset");

  // Asked, then the socket dropped: the next welcome names the new session.
  state.resetting = true;
  assert.equal(state.welcome("s4"), true);
  assert.equal(state.resetting, true, "until the caller's reset() clears the page");
  assert.equal(state.reset("s4"), true);
  // Asked, but the welcome names the same session: the reset did not happen.
  state.resetting = true;
  assert.equal(state.welcome("s4"), false);
  assert.equal(state.resetting, false);
});

test("another user id forgets everything", () => {
  const state = conversation();
  state.welcome("s1");
  state.queued(queued("t1", "x"));
  sent(state, "y", "c1");
  state.forget();
  assert.deepEqual([state.turns.size, state.pending.length, state.sessionId], [0, 0, null]);
});

test("history items group by turn in order; a turn's input and status come from its user item", () => {
  const items: HistoryItem[] = [
    user("a", "first"),
    { role: "assistant", turn_id: "a", content: "reply" },
    user("b", "second", "running"),
    { role: "assistant", turn_id: "a", content: "late" },
  ];
  assert.deepEqual(
    [...groupByTurn(items)].map(([id, group]) => [id, group.length]),
    [
      ["a", 3],
      ["b", 1],
    ],
  );
  assert.deepEqual(historyOutcome([items[0]!, items[1]!]), { input: "first", status: "ok", done: true });
  assert.deepEqual(historyOutcome([items[2]!]), { input: "second", status: "running", done: false });
  assert.deepEqual(historyOutcome([items[1]!]), { input: "", status: "ok", done: true });
  assert.deepEqual((["queued", "running", "ok", "lost", "interrupted"] as const).map(statusTag), [
    "queued",
    "",
    "",
    "not sent",
    "interrupted",
  ]);
});
