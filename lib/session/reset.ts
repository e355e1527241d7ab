// New chat: a user's session starts over. A new session_id and an empty history (stored and in
// memory), and with `clearWorkspace` an empty workspace folder. The running turn is cancelled and
// queued ones dropped; the MCP servers stay. The history changes only once the store has let go
// of the old one, so a store failure changes nothing; a workspace that cannot be emptied is
// reported as such. Every socket of the user is told exactly what was done, here and on other
// instances.
import { randomUUID } from "node:crypto";
import type { Logger, Redactor } from "../log.ts";
import { resetFrame, streamErrorFrame } from "../protocol.ts";
import type { ResetOutcome } from "../socket/dispatch.ts";
import type { SessionRecord, SessionStore } from "../store/store.ts";
import type { Workspaces } from "../workspace/workspaces.ts";
import type { UserSockets } from "./fanout.ts";
import { publicReason } from "./public-reason.ts";
import type { TurnQueue } from "./turn-queue.ts";

/** What a reset needs of its session. */
export interface ResettableSession {
  readonly userId: string;
  /** The current one: a new one after startOver(). */
  sessionId(): string;
  readonly sockets: UserSockets;
  readonly turns: TurnQueue;
  store: SessionStore;
  workspaces: Workspaces;
  log: Logger;
  redactor: Redactor;
  /** The old conversation is gone from the store: the session takes the fresh record, an empty history. */
  startOver(fresh: SessionRecord): void;
  record(): SessionRecord;
}

export async function resetSession(session: ResettableSession, clearWorkspace: boolean): Promise<ResetOutcome> {
  const { store, workspaces, log, redactor, userId } = session;
  let outcome: ResetOutcome;
  try {
    // Messages sent from now on belong to the new conversation: they wait until it exists.
    // Let the cancelled turn finish writing under the old session_id before it is deleted.
    const { dropped, stopped } = await session.turns.pause();
    const now = Date.now();
    const fresh: SessionRecord = { userId, sessionId: randomUUID(), createdAt: now, lastActivity: now, messageCount: 0 };
    try {
      await store.remove(userId);
    } catch (error) {
      const reason = redactor.redact(publicReason(error));
      log.error("session_reset_failed", { user_id: userId, session_id: session.sessionId(), error: reason });
      const undone = [
        stopped ? "the running answer was stopped" : "",
        dropped > 0 ? `${dropped} waiting message(s) were dropped` : "",
      ].filter(Boolean);
      outcome = {
        ok: false,
        code: "reset_failed",
        error: `New chat failed: the conversation could not be deleted (${reason}). ${
          undone.length === 0 ? "Nothing was changed" : `The conversation is unchanged, but ${undone.join(" and ")}`
        }`,
      };
      session.sockets.broadcast(streamErrorFrame(outcome.code, outcome.error));
      return outcome;
    }
    // The old conversation is gone from the store: from here on the reset has happened.
    session.startOver(fresh);
    const notes: string[] = [];
    // If the new record cannot be written now, the first turn's end writes it.
    await store.saveSession(session.record()).catch((error: unknown) => {
      log.warn("session_reset_save_failed", { user_id: userId, session_id: session.sessionId(), error: publicReason(error) });
    });
    let workspaceCleared = false;
    if (clearWorkspace) {
      try {
        await workspaces.clear(userId);
        workspaceCleared = true;
      } catch (error) {
        notes.push(`the workspace files could not all be deleted (${redactor.redact(publicReason(error, workspaces.dirFor(userId)))})`);
      }
    }
    log.info("session_reset", { user_id: userId, session_id: session.sessionId(), workspace_cleared: workspaceCleared, notes });
    outcome = { ok: true, workspaceCleared, notes };
  } finally {
    session.turns.resume();
  }
  session.sockets.broadcast(resetFrame(userId, session.sessionId(), outcome.workspaceCleared));
  if (outcome.notes.length > 0) {
    session.sockets.broadcast(
      streamErrorFrame("reset_incomplete", `New chat started (the conversation was cleared), but ${outcome.notes.join("; ")}`),
    );
  }
  return outcome;
}
