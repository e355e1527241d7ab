// @ts-check
// The conversation as this tab knows it, without the DOM: the turns by id, the messages sent but
// not acknowledged yet, and the rules for welcomes, replays of a running turn, history and resets.
// page/turns.js gives each turn its elements; tests/unit/page-conversation.test.ts drives this alone.

/** @typedef {import("../lib/protocol.ts").HistoryItem} HistoryItem */
/** @typedef {import("../lib/protocol.ts").QueuedFrame} QueuedFrame */
/** @typedef {import("../lib/protocol.ts").TurnStartFrame} TurnStartFrame */

/**
 * A turn's status: queued, running, ok, cancelled, error, interrupted, or lost (refused, or never
 * reached the server); "" before it has one.
 * @typedef {"" | "queued" | "running" | "ok" | "cancelled" | "error" | "interrupted" | "lost"} TurnStatus
 */

/**
 * @typedef {object} TurnState
 * @property {string | null} id the server's turn_id, once it acknowledged the message
 * @property {string | undefined} clientId set on messages this tab sent
 * @property {string} input
 * @property {TurnStatus} status
 * @property {boolean} done
 * @property {number} epoch the welcome this turn was last seen live in
 */

/** The tag under a user's message, by status; none while running or when it went well. */
/** @type {Map<TurnStatus, string>} */
const TAGS = new Map([
  ["queued", "queued"],
  ["cancelled", "cancelled"],
  ["error", "error"],
  ["interrupted", "interrupted"],
  ["lost", "not sent"],
]);

/**
 * @param {TurnStatus} status
 * @returns {string}
 */
export function statusTag(status) {
  return TAGS.get(status) ?? "";
}

/**
 * The user's message and how the turn ended, from its history items.
 * @param {HistoryItem[]} items
 * @returns {{ input: string, status: TurnStatus, done: boolean }}
 */
export function historyOutcome(items) {
  const user = items.find((item) => item.role === "user");
  if (user?.role !== "user") return { input: "", status: "ok", done: true };
  return { input: user.content, status: user.status, done: user.status !== "running" };
}

/**
 * The history's items grouped by turn, in the order the turns first appear.
 * @param {HistoryItem[]} items
 * @returns {Map<string, HistoryItem[]>}
 */
export function groupByTurn(items) {
  /** @type {Map<string, HistoryItem[]>} */
  const groups = new Map();
  for (const item of items) {
    const group = groups.get(item.turn_id);
    if (group) group.push(item);
    else groups.set(item.turn_id, [item]);
  }
  return groups;
}

/** @template {TurnState} T */
export class Conversation {
  /** @type {Map<string, T>} turn_id -> turn */
  turns = new Map();
  /** @type {T[]} messages sent from this tab that the server has not acknowledged yet */
  pending = [];
  /** Counts welcomes; a turn last seen in an older epoch is not live any more. */
  epoch = 0;
  /** Between a welcome and its history: frames may be replays of a running turn. */
  replaying = false;
  /** This tab asked for a reset and waits for the server's `reset` frame. */
  resetting = false;
  /** @type {string | null} */
  sessionId = null;
  /** The last welcome named another session than the one before. */
  sessionChanged = false;
  /** @type {(input: string) => T} */
  #make;

  /** @param {(input: string) => T} make a new turn for a user's message */
  constructor(make) {
    this.#make = make;
  }

  /**
   * The message this tab sent with that client_id, taken out of the unacknowledged list.
   * @param {string | undefined} clientId
   * @returns {T | undefined}
   */
  takePending(clientId) {
    if (clientId === undefined) return undefined;
    const index = this.pending.findIndex((turn) => turn.clientId === clientId);
    return index >= 0 ? this.pending.splice(index, 1)[0] : undefined;
  }

  /**
   * A (re)connect: true when a reset this tab asked for went through while the socket was down
   * (the caller then clears the conversation as for a `reset` frame, with reset()).
   * @param {string} sessionId
   * @returns {boolean}
   */
  welcome(sessionId) {
    this.epoch++;
    this.replaying = true;
    this.sessionChanged = this.sessionId !== null && this.sessionId !== sessionId;
    this.sessionId = sessionId;
    // Then the caller's reset() ends the wait; otherwise the reset never happened.
    const resetWentThrough = this.resetting && this.sessionChanged;
    if (!resetWentThrough) this.resetting = false;
    return resetWentThrough;
  }

  /**
   * A message was accepted: this tab's (by client_id) or another tab's, waiting for its turn.
   * @param {QueuedFrame} frame
   * @returns {T | undefined} the turn to show as queued; undefined when it is known already
   */
  queued(frame) {
    if (this.turns.has(frame.turn_id)) return undefined;
    const turn = this.takePending(frame.client_id) ?? this.#make(frame.input);
    turn.id = frame.turn_id;
    turn.epoch = this.epoch;
    this.turns.set(frame.turn_id, turn);
    return turn;
  }

  /**
   * A turn starts. "replay": the server replays a running turn to a socket that joins mid-turn (its
   * reply starts over); "new": a turn this tab did not know (a page that connects mid-turn sees
   * only the replay); "start": a queued turn starts.
   * @param {TurnStartFrame} frame
   * @returns {{ turn: T, kind: "replay" | "new" | "start" }}
   */
  turnStart(frame) {
    let turn = this.turns.get(frame.turn_id);
    /** @type {"replay" | "new" | "start"} */
    let kind = "start";
    if (turn && turn.status !== "queued") kind = "replay";
    else if (!turn) {
      kind = "new";
      turn = this.takePending(frame.client_id) ?? this.#make(frame.input);
      turn.id = frame.turn_id;
      this.turns.set(frame.turn_id, turn);
    }
    turn.epoch = this.epoch;
    turn.done = false;
    return { turn, kind };
  }

  /**
   * The history after a welcome arrived: what becomes of the transcript shown so far. "archive":
   * a new, empty session (the server restarted without a store): keep it, greyed; "clear-archive":
   * another session with a history; "same": the session the page knew.
   * @param {number} items
   * @returns {"archive" | "clear-archive" | "same"}
   */
  historyArrived(items) {
    this.replaying = false;
    const changed = this.sessionChanged;
    this.sessionChanged = false;
    if (!changed) return "same";
    return items === 0 ? "archive" : "clear-archive";
  }

  /**
   * A turn is live while it runs in this epoch or waits in the queue: history does not replace it.
   * @param {T | undefined} turn
   * @returns {turn is T}
   */
  isLive(turn) {
    return turn !== undefined && !turn.done && (turn.epoch === this.epoch || turn.status === "queued");
  }

  /**
   * The server's conversation replaces ours; turns running now (replayed after welcome) and queued
   * ones stay. Returns the turns that are gone (their approvals go with them).
   * @param {HistoryItem[]} items
   * @param {(id: string, items: HistoryItem[]) => T} fromHistory
   * @returns {T[]}
   */
  mergeHistory(items, fromHistory) {
    /** @type {Map<string, T>} */
    const next = new Map();
    for (const [id, group] of groupByTurn(items)) {
      const live = this.turns.get(id);
      next.set(id, this.isLive(live) ? live : fromHistory(id, group));
    }
    for (const [id, turn] of this.turns) if (this.isLive(turn) && !next.has(id)) next.set(id, turn);
    const gone = [...this.turns.values()].filter((turn) => turn.id === null || !next.has(turn.id));
    this.turns = next;
    return gone;
  }

  /**
   * The transcript goes to the archive: returns the turns that did not finish and the messages
   * that were never acknowledged, and starts with none.
   * @returns {{ unfinished: T[], unsent: T[] }}
   */
  archive() {
    const unfinished = [...this.turns.values()].filter((turn) => !turn.done);
    const unsent = this.pending;
    this.turns = new Map();
    this.pending = [];
    return { unfinished, unsent };
  }

  /**
   * The session started over: its turns are gone. Messages this tab sent that the server has not
   * acknowledged yet were sent after the reset: they stay. True when this tab asked for it.
   * @param {string} sessionId
   * @returns {boolean}
   */
  reset(sessionId) {
    const mine = this.resetting;
    this.resetting = false;
    this.sessionId = sessionId;
    this.sessionChanged = false;
    this.turns = new Map();
    return mine;
  }

  /** Another user id: nothing of the old conversation stays. */
  forget() {
    this.turns = new Map();
    this.pending = [];
    this.sessionId = null;
  }

  /** @returns {boolean} whether a turn runs now (Stop applies to it) */
  running() {
    return [...this.turns.values()].some((turn) => turn.status === "running" && turn.epoch === this.epoch);
  }
}
