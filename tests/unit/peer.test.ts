// lib/socket/peer.ts against a real ws pair (no agent server): backpressure, merged deltas, drops.
import { test } from "node:test";
import assert from "node:assert/strict";
import type net from "node:net";
import { WebSocketServer, WebSocket } from "ws";
import { TestClient } from "../helpers/harness.ts";
import { SocketPeer } from "../../lib/socket/peer.ts";
import { errorFrame } from "../../lib/protocol.ts";

const MiB = 1024 * 1024;

/** A real ws pair: the server side wrapped in a SocketPeer, the client side paused or read. */
async function peerPair(limits: { softBytes: number; hardBytes: number }) {
  const wss = new WebSocketServer({ port: 0, host: "127.0.0.1", perMessageDeflate: false });
  await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
  const serverSide = new Promise<WebSocket>((resolve) => wss.once("connection", resolve));
  const client = new TestClient(`ws://127.0.0.1:${(wss.address() as net.AddressInfo).port}`);
  await client.opened();
  const ws = await serverSide;
  const drops: number[] = [];
  const peer = new SocketPeer({ id: 1, ws, streaming: true, limits, onDrop: (bytes) => drops.push(bytes) });
  const socket = (client.ws as unknown as { _socket: net.Socket })._socket;
  /** Sends big non-delta frames until the socket's own buffer is past `bytes` (the kernel's is full). */
  const congest = (bytes: number) => {
    const filler = errorFrame("internal_error", "f".repeat(64 * 1024));
    while (ws.bufferedAmount <= bytes && ws.readyState === WebSocket.OPEN) peer.send(filler);
  };
  return {
    peer,
    ws,
    client,
    socket,
    drops,
    congest,
    close: async () => {
      client.ws.terminate();
      ws.terminate();
      await new Promise((resolve) => wss.close(resolve));
    },
  };
}

test("SocketPeer: past the soft cap deltas are merged; a resumed reader gets fewer frames, the same text", async () => {
  const pair = await peerPair({ softBytes: 1024, hardBytes: 1024 ** 3 });
  try {
    pair.socket.pause();
    pair.congest(1024);
    const buffered = pair.ws.bufferedAmount;
    const pieces = Array.from({ length: 200 }, (_, n) => `piece ${n}; `);
    for (const text of pieces) pair.peer.send({ type: "delta", turn_id: "t1", text });
    assert.ok(pair.ws.bufferedAmount - buffered < 200, "held deltas are not queued on the socket");
    pair.peer.send({ type: "answer", turn_id: "t1", message: pieces.join(""), user_id: "u", session_id: "s" });
    pair.socket.resume();
    const answer = await pair.client.nextMatching((frame) => frame.type === "answer");
    const deltas = pair.client.frames.filter((frame) => frame.type === "delta");
    assert.ok(deltas.length >= 1 && deltas.length < pieces.length, `${deltas.length} delta frames for ${pieces.length} chunks`);
    assert.equal(deltas.map((frame) => frame.text).join(""), pieces.join(""));
    assert.equal(answer.message, pieces.join(""));
    assert.ok(pair.client.frames.indexOf(deltas.at(-1)!) < pair.client.frames.indexOf(answer), "the merged text comes before the answer");
    assert.deepEqual(pair.drops, []);
  } finally {
    await pair.close();
  }
});

test("SocketPeer: deltas of another turn are not merged into the held ones", async () => {
  const pair = await peerPair({ softBytes: 1024, hardBytes: 1024 ** 3 });
  try {
    pair.socket.pause();
    pair.congest(1024);
    for (const [turn, text] of [
      ["a", "1"],
      ["a", "2"],
      ["b", "3"],
      ["b", "4"],
    ] as const)
      pair.peer.send({ type: "delta", turn_id: turn, text });
    pair.peer.send({ type: "cancelled", turn_id: "b" });
    pair.socket.resume();
    await pair.client.nextMatching((frame) => frame.type === "cancelled");
    const deltas = pair.client.frames.filter((frame) => frame.type === "delta").map((frame) => [frame.turn_id, frame.text]);
    assert.deepEqual(deltas, [
      ["a", "12"],
      ["b", "34"],
    ]);
  } finally {
    await pair.close();
  }
});

test("SocketPeer: a reader behind by more than the hard cap (buffer plus held text) is dropped at once", async () => {
  const pair = await peerPair({ softBytes: 1024, hardBytes: 256 * 1024 });
  try {
    pair.socket.pause();
    pair.congest(1024);
    const buffered = pair.ws.bufferedAmount;
    assert.ok(buffered < 256 * 1024);
    // Held deltas keep the socket's buffer where it is; the text held back is what grows.
    const piece = "d".repeat(1024);
    let sent = 0;
    while (pair.drops.length === 0 && sent < 1024) {
      pair.peer.send({ type: "delta", turn_id: "t", text: piece });
      sent++;
    }
    assert.equal(pair.drops.length, 1, "dropped while the deltas were held, without waiting for another kind of frame");
    assert.ok(sent * piece.length + buffered > 256 * 1024 && sent * piece.length < 256 * 1024 + 2048, `dropped after ${sent} deltas`);
    assert.notEqual(pair.ws.readyState, WebSocket.OPEN);
    // Nothing more is written to a dropped socket.
    pair.peer.send({ type: "answer", turn_id: "t", message: "late", user_id: "u", session_id: "s" });
    assert.equal(pair.drops.length, 1);
  } finally {
    await pair.close();
  }
});

test("SocketPeer: one big frame to a reader that keeps up is not a reason to drop it", async () => {
  const pair = await peerPair({ softBytes: 1024, hardBytes: 256 * 1024 });
  try {
    const message = "z".repeat(8 * MiB);
    pair.peer.send({ type: "answer", turn_id: "t", message, user_id: "u", session_id: "s" });
    assert.equal((await pair.client.next()).message, message);
    pair.peer.send({ type: "cancelled", turn_id: "t2" });
    assert.equal((await pair.client.next()).type, "cancelled");
    assert.deepEqual(pair.drops, []);
  } finally {
    await pair.close();
  }
});
