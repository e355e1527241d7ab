// What a streaming socket that joins mid-turn is shown of the turn so far: every frame while they
// are small, else at most `maxBytes` of them (limits.max_replay_bytes): the turn_start (telling how
// much was left out, and that the history has it all once the turn ends), every question still
// waiting for an answer with its tool card, and the newest frames that fit. Pure.
import type { StreamFrame, TurnStartFrame } from "../protocol.ts";

/** Said on the replayed turn_start when frames were left out. */
export interface ReplayCut {
  omitted_bytes: number;
  hint: string;
}

const HINT = 'the start of this turn was left out; ask {"type":"history"} once it ends to see all of it';

const sizeOf = (frame: StreamFrame) => Buffer.byteLength(JSON.stringify(frame));

export function replayFrames(frames: readonly StreamFrame[], maxBytes: number): StreamFrame[] {
  const sizes = frames.map(sizeOf);
  const total = sizes.reduce((sum, size) => sum + size, 0);
  if (total <= maxBytes) return [...frames];
  // Questions not answered yet must reach the new socket, or nobody there could answer them.
  const answered = new Set<string>();
  for (const frame of frames) {
    if (frame.type === "approval_resolved") answered.add(`call:${frame.call_id}`);
    if (frame.type === "elicitation_resolved") answered.add(`request:${frame.request_id}`);
  }
  const waiting = new Set<string>();
  for (const frame of frames) if (frame.type === "approval_request" && !answered.has(`call:${frame.call_id}`)) waiting.add(frame.call_id);
  const pinned = frames.map(
    (frame) =>
      frame.type === "turn_start" ||
      (frame.type === "approval_request" && waiting.has(frame.call_id)) ||
      (frame.type === "tool_start" && waiting.has(frame.call_id)) ||
      (frame.type === "elicitation_request" && !answered.has(`request:${frame.request_id}`)),
  );
  let budget = maxBytes - sizes.reduce((sum, size, index) => sum + (pinned[index] ? size : 0), 0) - 256;
  const kept = new Array<StreamFrame | undefined>(frames.length).fill(undefined);
  for (let index = frames.length - 1; index >= 0 && budget > 0; index--) {
    const frame = frames[index];
    if (!frame || pinned[index]) continue;
    const size = sizes[index] ?? 0;
    if (size <= budget) {
      kept[index] = frame;
      budget -= size;
      continue;
    }
    // The newest text that fits, so the new socket shows how the answer goes on.
    if (frame.type === "delta" && budget > 200) kept[index] = { ...frame, text: frame.text.slice(-(budget - 200)) };
    break;
  }
  const shown = frames.flatMap((frame, index) => (pinned[index] ? [frame] : kept[index] ? [kept[index]] : []));
  const omitted = total - shown.reduce((sum, frame) => sum + sizeOf(frame), 0);
  return shown.map((frame) =>
    frame.type === "turn_start" ? ({ ...frame, replay_cut: { omitted_bytes: omitted, hint: HINT } } satisfies TurnStartFrame) : frame,
  );
}
