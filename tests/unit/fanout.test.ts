// The one fan-out of a user's frames (lib/session/fanout.ts): who gets what, what a socket that
// joins mid-turn is shown, and what is handed to the Coordinator for the user's other instances.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { CoordinatorMessage } from "../../lib/session/coordinator.ts";
import { LocalCoordinator } from "../../lib/session/coordinator.ts";
import { UserSockets, type Peer } from "../../lib/session/fanout.ts";
import {
  cancelledFrame,
  deltaFrame,
  queuedFrame,
  resetFrame,
  streamAnswerFrame,
  toolProgressFrame,
  turnStartFrame,
  type ServerFrame,
} from "../../lib/protocol.ts";

function peer(id: number, streaming: boolean): Peer & { got: ServerFrame[] } {
  const got: ServerFrame[] = [];
  return { id, streaming, got, send: (frame) => got.push(frame) };
}

function recordingCoordinator(): LocalCoordinator & { published: CoordinatorMessage[] } {
  const published: CoordinatorMessage[] = [];
  return Object.assign(new LocalCoordinator(), {
    published,
    publish: (_user: string, message: CoordinatorMessage) => published.push(message),
  });
}

test("turn frames go to streaming sockets only, and to the user's other instances", () => {
  const coordinator = recordingCoordinator();
  const sockets = new UserSockets("alice", coordinator);
  const seed = peer(1, false);
  const streaming = peer(2, true);
  sockets.add(seed);
  sockets.add(streaming);
  sockets.turnFrame(turnStartFrame("t1", "hi"));
  sockets.broadcast(queuedFrame("t2", "next", 1));
  assert.deepEqual(seed.got, []);
  assert.deepEqual(
    streaming.got.map((frame) => "type" in frame && frame.type),
    ["turn_start", "queued"],
  );
  assert.deepEqual(
    coordinator.published.map((message) => message.kind === "frame" && message.frame.type),
    ["turn_start", "queued"],
  );
  assert.equal(sockets.anyStreaming, true);
  sockets.delete(streaming);
  assert.equal(sockets.anyStreaming, false);
});

test("a streaming socket that joins mid-turn is shown the turn so far, deltas merged; none after the turn ended", () => {
  const sockets = new UserSockets("alice", new LocalCoordinator());
  sockets.turnFrame(turnStartFrame("t1", "hi"));
  sockets.turnFrame(deltaFrame("t1", "Hel"));
  sockets.turnFrame(deltaFrame("t1", "lo"));
  const late = peer(3, true);
  sockets.add(late);
  assert.deepEqual(late.got, [turnStartFrame("t1", "hi"), deltaFrame("t1", "Hello")]);
  sockets.turnFrame(streamAnswerFrame("t1", "Hello", "alice", "s1"));
  const later = peer(4, true);
  sockets.add(later);
  assert.deepEqual(later.got, []);
  // A seed socket is never replayed to.
  sockets.turnFrame(turnStartFrame("t2", "again"));
  const seed = peer(5, false);
  sockets.add(seed);
  assert.deepEqual(seed.got, []);
});

test("frames from another instance reach local streaming sockets, are not published back, and are replayed", () => {
  const coordinator = recordingCoordinator();
  const sockets = new UserSockets("alice", coordinator);
  const here = peer(1, true);
  sockets.add(here);
  sockets.fromElsewhere(turnStartFrame("t9", "remote"));
  sockets.fromElsewhere(resetFrame("alice", "s2", false));
  assert.equal(here.got.length, 2);
  assert.deepEqual(coordinator.published, []);
  const joiner = peer(2, true);
  sockets.add(joiner);
  assert.deepEqual(joiner.got, [turnStartFrame("t9", "remote")]);
  // The instance running it died: once this one holds the lease the stale turn is forgotten.
  sockets.forgetTurn();
  const another = peer(3, true);
  sockets.add(another);
  assert.deepEqual(another.got, []);
  sockets.fromElsewhere(cancelledFrame("t9"));
});

test("a socket joining mid-turn is shown each call's latest progress only, however often it was reported", () => {
  const sockets = new UserSockets("progress-user", new LocalCoordinator());
  sockets.turnFrame(turnStartFrame("t1", "go"));
  for (let step = 1; step <= 1000; step++) sockets.turnFrame(toolProgressFrame("t1", "call_a", { progress: step, total: 1000 }));
  sockets.turnFrame(toolProgressFrame("t1", "call_b", { progress: 1 }));
  const got: ServerFrame[] = [];
  sockets.add({ id: 1, streaming: true, send: (frame) => got.push(frame) });
  assert.deepEqual(
    got.map((frame) => ("type" in frame ? [frame.type, "progress" in frame ? frame.progress : undefined] : [])),
    [
      ["turn_start", undefined],
      ["tool_progress", 1000],
      ["tool_progress", 1],
    ],
  );
});
